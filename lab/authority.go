package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"filippo.io/age"
	"golang.org/x/sys/unix"

	"github.com/vaultpam/appliance/connector/protocol"
)

// AuthorityConfig configures an Authority. The zero value is usable after
// DefaultConfig's defaults are applied by OpenAuthority.
type AuthorityConfig struct {
	// StateDir holds ca.pem, ca-key.pem and state.json. Required.
	StateDir string
	// TokenTTL is how long a new token stays valid; 0 means 1 h.
	TokenTTL time.Duration
	// CertTTL is the lifetime of issued client certificates; 0 means 7 days.
	CertTTL time.Duration
	// ChallengeTTL bounds the time between start and finish; 0 means 5 min.
	ChallengeTTL time.Duration
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// DefaultConfig returns the defaults for the given state directory.
func DefaultAuthorityConfig(stateDir string) AuthorityConfig {
	return AuthorityConfig{StateDir: stateDir, TokenTTL: time.Hour, CertTTL: 7 * 24 * time.Hour, ChallengeTTL: 5 * time.Minute, Now: time.Now, Rand: rand.Reader}
}

// APIError is an enrolment error with its wire code.
type APIError struct {
	HTTPStatus int
	Code       string
	Message    string
	CertSHA256 string // the client certificate judged, on identity refusals
}

func (e *APIError) Error() string { return e.Message }

func apiErr(status int, code, format string, args ...any) *APIError {
	return &APIError{HTTPStatus: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrStateLocked means another process (a running `vaultpam-lab serve`)
// holds the state directory.
var ErrStateLocked = errors.New("lab state directory is in use by another process")

// Authority is the enrolment authority: CA, tokens, challenges, registry.
// It is safe for concurrent use. Only one Authority may hold a state
// directory at a time (flock on DIR/lock).
type Authority struct {
	cfg     AuthorityConfig
	ca      *CA
	support *age.X25519Identity // support bundles are encrypted to it
	lock    *os.File

	mu         sync.Mutex
	st         *state
	challenges map[string]*challenge
	attempts   map[string]int // enrol starts per token hash, for tests
	onChange   []func(Connector)
}

type challenge struct {
	tokenHash string
	nonce     []byte
	expires   time.Time
}

// OpenAuthority opens (or initialises) the state in cfg.StateDir.
func OpenAuthority(cfg AuthorityConfig) (*Authority, error) {
	def := DefaultAuthorityConfig(cfg.StateDir)
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = def.TokenTTL
	}
	if cfg.CertTTL == 0 {
		cfg.CertTTL = def.CertTTL
	}
	if cfg.ChallengeTTL == 0 {
		cfg.ChallengeTTL = def.ChallengeTTL
	}
	if cfg.Now == nil {
		cfg.Now = def.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = def.Rand
	}
	if cfg.StateDir == "" {
		return nil, errors.New("state directory not set")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.StateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening state lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: %s", ErrStateLocked, cfg.StateDir)
	}
	ca, err := loadOrCreateCA(cfg.StateDir, cfg.Now(), cfg.Rand)
	if err != nil {
		lock.Close()
		return nil, err
	}
	sk, err := loadOrCreateSupportKey(cfg.StateDir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	st, err := loadState(cfg.StateDir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	// Nothing is connected to a freshly opened authority.
	for _, c := range st.Connectors {
		if c.Status == StatusOnline {
			c.Status, c.StatusReason = StatusOffline, "control plane restarted"
		}
	}
	return &Authority{cfg: cfg, ca: ca, support: sk, lock: lock, st: st, challenges: map[string]*challenge{}, attempts: map[string]int{}}, nil
}

// Close saves the registry and releases the state directory.
func (a *Authority) Close() error {
	a.mu.Lock()
	err := a.st.save(a.cfg.StateDir)
	a.mu.Unlock()
	return errors.Join(err, a.lock.Close())
}

// CA returns the authority's CA.
func (a *Authority) CA() *CA { return a.ca }

// OnChange registers f to be called (without locks held) after a
// connector's status changes.
func (a *Authority) OnChange(f func(Connector)) {
	a.mu.Lock()
	a.onChange = append(a.onChange, f)
	a.mu.Unlock()
}

func tokenHash(canonical string) string {
	h := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(h[:])
}

// CreateToken issues an enrolment token for a new connector called name,
// valid for ttl (0 = the configured default). It returns the canonical
// token; only its hash is stored.
func (a *Authority) CreateToken(name string, ttl time.Duration) (string, error) {
	if name == "" {
		return "", errors.New("connector name is empty")
	}
	return a.newToken(&tokenRecord{Name: name}, ttl)
}

// CreateRecoveryToken issues a token that re-binds connector id.
func (a *Authority) CreateRecoveryToken(id string, ttl time.Duration) (string, error) {
	a.mu.Lock()
	c := a.st.connector(id)
	a.mu.Unlock()
	if c == nil {
		return "", fmt.Errorf("no connector with ID %q", id)
	}
	tok, err := a.newToken(&tokenRecord{Name: c.Name, Recovery: id}, ttl)
	if err == nil && c.Status != StatusOnline {
		a.SetStatus(id, StatusNeedsRecovery, "recovery token issued; waiting for the connector to use it")
	}
	return tok, err
}

func (a *Authority) newToken(rec *tokenRecord, ttl time.Duration) (string, error) {
	if ttl == 0 {
		ttl = a.cfg.TokenTTL
	}
	tok, err := protocol.NewToken(a.cfg.Rand)
	if err != nil {
		return "", err
	}
	now := a.cfg.Now().UTC()
	rec.Hash, rec.CreatedAt, rec.ExpiresAt = tokenHash(tok), now, now.Add(ttl)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.Tokens = append(a.st.Tokens, rec)
	if err := a.st.save(a.cfg.StateDir); err != nil {
		a.st.Tokens = a.st.Tokens[:len(a.st.Tokens)-1]
		return "", err
	}
	return tok, nil
}

// EnrolAttempts reports how many times token was presented to StartEnrol.
func (a *Authority) EnrolAttempts(token string) int {
	canon, err := protocol.ParseToken(token)
	if err != nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attempts[tokenHash(canon)]
}

// StartEnrol checks the token and hands out a challenge.
func (a *Authority) StartEnrol(req protocol.EnrolStartRequest) (protocol.EnrolChallenge, error) {
	canon, err := protocol.ParseToken(req.Token)
	if errors.Is(err, protocol.ErrTokenTypo) {
		return protocol.EnrolChallenge{}, apiErr(http.StatusBadRequest, protocol.CodeTokenTypo, "token has a typo (check character does not match)")
	}
	if err != nil {
		return protocol.EnrolChallenge{}, apiErr(http.StatusBadRequest, protocol.CodeBadRequest, "token is malformed")
	}
	h := tokenHash(canon)
	now := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.attempts[h]++
	rec := a.st.token(h)
	if err := checkToken(rec, now); err != nil {
		return protocol.EnrolChallenge{}, err
	}
	nonce := make([]byte, 32)
	idb := make([]byte, 16)
	if _, err := io.ReadFull(a.cfg.Rand, nonce); err != nil {
		return protocol.EnrolChallenge{}, apiErr(http.StatusInternalServerError, protocol.CodeInternal, "reading randomness")
	}
	if _, err := io.ReadFull(a.cfg.Rand, idb); err != nil {
		return protocol.EnrolChallenge{}, apiErr(http.StatusInternalServerError, protocol.CodeInternal, "reading randomness")
	}
	id := hex.EncodeToString(idb)
	ch := &challenge{tokenHash: h, nonce: nonce, expires: now.Add(a.cfg.ChallengeTTL)}
	a.challenges[id] = ch
	for k, c := range a.challenges { // drop stale ones
		if now.After(c.expires) {
			delete(a.challenges, k)
		}
	}
	return protocol.EnrolChallenge{ChallengeID: id, Nonce: nonce, ExpiresAt: ch.expires.UTC(), Recovery: rec.Recovery != "", ConnectorID: rec.Recovery}, nil
}

func checkToken(rec *tokenRecord, now time.Time) error {
	switch {
	case rec == nil:
		return apiErr(http.StatusUnauthorized, protocol.CodeTokenUnknown, "token is not known to this control plane")
	case !rec.UsedAt.IsZero():
		return apiErr(http.StatusConflict, protocol.CodeTokenUsed, "token was already used on %s", rec.UsedAt.UTC().Format(time.RFC3339))
	case now.After(rec.ExpiresAt):
		return apiErr(http.StatusGone, protocol.CodeTokenExpired, "token expired on %s", rec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// FinishEnrol checks the proof of possession, consumes the token and
// issues the certificate, all under one lock and one state write.
func (a *Authority) FinishEnrol(req protocol.EnrolFinishRequest) (protocol.EnrolResult, error) {
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return protocol.EnrolResult{}, apiErr(http.StatusBadRequest, protocol.CodeChallengeFailed, "CSR does not parse")
	}
	if err := csr.CheckSignature(); err != nil {
		return protocol.EnrolResult{}, apiErr(http.StatusBadRequest, protocol.CodeChallengeFailed, "CSR signature is wrong")
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return protocol.EnrolResult{}, apiErr(http.StatusBadRequest, protocol.CodeChallengeFailed, "CSR key must be ECDSA P-256")
	}
	pkix, _ := x509.MarshalPKIXPublicKey(pub)
	pkh := sha256.Sum256(pkix)
	pubHash := hex.EncodeToString(pkh[:])
	now := a.cfg.Now()

	a.mu.Lock()
	ch := a.challenges[req.ChallengeID]
	if ch == nil {
		// A retry after a lost response: answer it again.
		for _, t := range a.st.Tokens {
			if t.Challenge != "" && t.Challenge == req.ChallengeID && t.PubKeyHash == pubHash {
				res := a.resultLocked(t)
				a.mu.Unlock()
				return res, nil
			}
		}
		a.mu.Unlock()
		return protocol.EnrolResult{}, apiErr(http.StatusBadRequest, protocol.CodeChallengeFailed, "challenge is unknown or expired; start the enrolment again")
	}
	if !ecdsa.VerifyASN1(pub, protocol.ChallengeDigest(ch.nonce, req.CSR), req.Signature) {
		a.mu.Unlock()
		return protocol.EnrolResult{}, apiErr(http.StatusBadRequest, protocol.CodeChallengeFailed, "challenge signature does not verify with the CSR's key")
	}
	if now.After(ch.expires) {
		delete(a.challenges, req.ChallengeID)
		a.mu.Unlock()
		return protocol.EnrolResult{}, apiErr(http.StatusBadRequest, protocol.CodeChallengeFailed, "challenge expired; start the enrolment again")
	}
	rec := a.st.token(ch.tokenHash)
	if err := checkToken(rec, now); err != nil {
		a.mu.Unlock()
		return protocol.EnrolResult{}, err
	}
	snapshot, _ := json.Marshal(a.st)
	var c *Connector
	if rec.Recovery != "" {
		c = a.st.connector(rec.Recovery)
		if c == nil {
			a.mu.Unlock()
			return protocol.EnrolResult{}, apiErr(http.StatusConflict, protocol.CodeTokenUnknown, "recovery token names a connector that no longer exists")
		}
		for _, s := range c.Serials {
			if !slices.Contains(c.Revoked, s) {
				c.Revoked = append(c.Revoked, s)
			}
		}
		c.Status, c.StatusReason = StatusPending, "recovered, waiting for tunnel"
	} else {
		idb := make([]byte, 8)
		io.ReadFull(a.cfg.Rand, idb)
		c = &Connector{ID: "conn-" + hex.EncodeToString(idb), Name: rec.Name, Status: StatusPending, EnrolledAt: now.UTC()}
		a.st.Connectors = append(a.st.Connectors, c)
	}
	cert, err := a.ca.issueClient(csr, c.ID, now, a.cfg.CertTTL, a.cfg.Rand)
	if err != nil {
		a.restoreLocked(snapshot)
		a.mu.Unlock()
		return protocol.EnrolResult{}, apiErr(http.StatusInternalServerError, protocol.CodeInternal, "issuing certificate failed")
	}
	c.Serials = append(c.Serials, cert.SerialNumber.Text(16))
	rec.UsedAt, rec.Challenge, rec.PubKeyHash, rec.ConnectorID = now.UTC(), req.ChallengeID, pubHash, c.ID
	rec.CertPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	if err := a.st.save(a.cfg.StateDir); err != nil {
		a.restoreLocked(snapshot)
		a.mu.Unlock()
		return protocol.EnrolResult{}, apiErr(http.StatusInternalServerError, protocol.CodeInternal, "saving state failed")
	}
	delete(a.challenges, req.ChallengeID)
	res := a.resultLocked(rec)
	snap := *c
	hooks := a.onChange
	a.mu.Unlock()
	for _, f := range hooks {
		f(snap)
	}
	return res, nil
}

func (a *Authority) restoreLocked(snapshot []byte) {
	var st state
	if json.Unmarshal(snapshot, &st) == nil {
		a.st = &st
	}
}

func (a *Authority) resultLocked(t *tokenRecord) protocol.EnrolResult {
	return protocol.EnrolResult{ConnectorID: t.ConnectorID, CertificatePEM: t.CertPEM, CABundlePEM: string(a.ca.CertPEM), Recovery: t.Recovery != ""}
}

// Authenticate maps a client certificate to its connector ID. The TLS
// layer only requested the certificate (tls.RequestClientCert), so the
// chain is verified here against the lab CA at the authority's clock, and
// every refusal is typed for the connector: cert_unknown (not issued
// here), cert_expired, cert_not_yet_valid, cert_revoked. The refusal's
// CertSHA256 names the certificate judged (see protocol.ErrorResponse).
func (a *Authority) Authenticate(cert *x509.Certificate) (string, error) {
	fp := protocol.CertFingerprint(cert.Raw)
	refuse := func(status int, code, format string, args ...any) error {
		e := apiErr(status, code, format, args...)
		e.CertSHA256 = fp
		return e
	}
	now := a.cfg.Now()
	_, err := cert.Verify(x509.VerifyOptions{Roots: a.ca.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && now.Before(cert.NotBefore):
		return "", refuse(http.StatusUnauthorized, protocol.CodeCertNotYetValid, "client certificate is not valid before %s by the control plane's clock (%s)",
			cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "", refuse(http.StatusUnauthorized, protocol.CodeCertExpired, "client certificate expired at %s by the control plane's clock (%s)",
			cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case err != nil:
		return "", refuse(http.StatusUnauthorized, protocol.CodeCertUnknown, "client certificate was not issued by this control plane")
	}
	id, err := protocol.ConnectorIDFromURIs(cert.URIs)
	if err != nil {
		return "", refuse(http.StatusUnauthorized, protocol.CodeCertUnknown, "client certificate is not a connector certificate")
	}
	serial := cert.SerialNumber.Text(16)
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.st.connector(id)
	if c == nil || !slices.Contains(c.Serials, serial) {
		return "", refuse(http.StatusUnauthorized, protocol.CodeCertUnknown, "client certificate was not issued by this control plane")
	}
	if slices.Contains(c.Revoked, serial) || c.Status == StatusRevoked {
		return "", refuse(http.StatusForbidden, protocol.CodeCertRevoked, "certificate of connector %s is revoked", id)
	}
	return id, nil
}
