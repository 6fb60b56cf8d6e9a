package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openTest(t *testing.T) (*Authority, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Now()}
	cfg := DefaultAuthorityConfig(t.TempDir())
	cfg.Now = clk.Now
	a, err := OpenAuthority(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, clk
}

// answer runs the connector's side of a challenge with key.
func answer(t *testing.T, ch protocol.EnrolChallenge, key *ecdsa.PrivateKey) protocol.EnrolFinishRequest {
	t.Helper()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := ecdsa.SignASN1(rand.Reader, key, protocol.ChallengeDigest(ch.Nonce, csr))
	return protocol.EnrolFinishRequest{ChallengeID: ch.ChallengeID, CSR: csr, Signature: sig}
}

func code(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func enrolOK(t *testing.T, a *Authority, tok string, key *ecdsa.PrivateKey) protocol.EnrolResult {
	t.Helper()
	ch, err := a.StartEnrol(protocol.EnrolStartRequest{Token: tok})
	if err != nil {
		t.Fatalf("StartEnrol = %v", err)
	}
	res, err := a.FinishEnrol(answer(t, ch, key))
	if err != nil {
		t.Fatalf("FinishEnrol = %v", err)
	}
	return res
}

func TestEnrolIssuesBoundCertificate(t *testing.T) {
	a, _ := openTest(t)
	tok, err := a.CreateToken("dc1", 0)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	res := enrolOK(t, a, strings.ToLower(protocol.FormatToken(tok)), key)
	b, _ := pem.Decode([]byte(res.CertificatePEM))
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := protocol.ConnectorIDFromURIs(cert.URIs); id != res.ConnectorID || len(cert.URIs) != 1 || cert.URIs[0].String() != "vaultpam://connector/"+res.ConnectorID {
		t.Errorf("certificate URIs = %v, want vaultpam://connector/%s", cert.URIs, res.ConnectorID)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: a.CA().Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate does not verify against the CA: %v", err)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Error("certificate is not for the CSR's key")
	}
	c, _ := a.Connector(res.ConnectorID)
	if c.Name != "dc1" || c.Status != StatusPending {
		t.Errorf("registry entry = %+v", c)
	}
	// Tokens are stored only as hashes.
	st, _ := os.ReadFile(filepath.Join(a.cfg.StateDir, "state.json"))
	if strings.Contains(string(st), tok) || strings.Contains(string(st), protocol.FormatToken(tok)) {
		t.Error("state.json contains the token in clear")
	}
}

func TestTokenErrors(t *testing.T) {
	a, clk := openTest(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	used, _ := a.CreateToken("a", 0)
	enrolOK(t, a, used, key)
	expiring, _ := a.CreateToken("b", time.Minute)
	clk.Add(2 * time.Minute)
	unknown, _ := protocol.NewToken(nil)
	typo := []byte(used)
	typo[3] ^= 1
	if typo[3] == used[3] {
		t.Fatal("fixture")
	}
	for _, tc := range []struct {
		name, tok, want string
	}{
		{"used", used, protocol.CodeTokenUsed},
		{"expired", expiring, protocol.CodeTokenExpired},
		{"unknown", unknown, protocol.CodeTokenUnknown},
	} {
		if _, err := a.StartEnrol(protocol.EnrolStartRequest{Token: tc.tok}); code(err) != tc.want {
			t.Errorf("%s: StartEnrol = %v (%s), want %s", tc.name, err, code(err), tc.want)
		}
	}
	for i := range used {
		bad := used[:i] + string("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[(strings.IndexByte("0123456789ABCDEFGHJKMNPQRSTVWXYZ", used[i])+1)%32]) + used[i+1:]
		if _, err := a.StartEnrol(protocol.EnrolStartRequest{Token: bad}); code(err) != protocol.CodeTokenTypo {
			t.Errorf("typo at %d: StartEnrol = %v, want token_typo", i, err)
		}
	}
}

// The token is consumed by the finish; a second challenge on it fails, and
// the first finish sent again (lost answer) gets the same certificate.
func TestFinishIsIdempotentAndSingleUse(t *testing.T) {
	a, _ := openTest(t)
	tok, _ := a.CreateToken("a", 0)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ch1, _ := a.StartEnrol(protocol.EnrolStartRequest{Token: tok})
	ch2, _ := a.StartEnrol(protocol.EnrolStartRequest{Token: tok}) // two open challenges
	req := answer(t, ch1, key)
	r1, err := a.FinishEnrol(req)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.FinishEnrol(req)
	if err != nil || r2 != r1 {
		t.Fatalf("retried FinishEnrol = %v, %v; want the same result", r2.ConnectorID, err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := a.FinishEnrol(answer(t, ch2, other)); code(err) != protocol.CodeTokenUsed {
		t.Errorf("second challenge FinishEnrol = %v, want token_used", err)
	}
	// Replaying the first challenge with another key is not a retry.
	if _, err := a.FinishEnrol(answer(t, ch1, other)); code(err) != protocol.CodeChallengeFailed {
		t.Errorf("replay with another key = %v, want challenge_failed", err)
	}
	if n := len(a.Connectors()); n != 1 {
		t.Errorf("%d connectors registered, want 1", n)
	}
}

func TestProofOfPossession(t *testing.T) {
	a, _ := openTest(t)
	tok, _ := a.CreateToken("a", 0)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ch, _ := a.StartEnrol(protocol.EnrolStartRequest{Token: tok})
	req := answer(t, ch, key)
	req.Signature[len(req.Signature)-1] ^= 1
	if _, err := a.FinishEnrol(req); code(err) != protocol.CodeChallengeFailed {
		t.Fatalf("bad signature: FinishEnrol = %v, want challenge_failed", err)
	}
	if _, err := a.StartEnrol(protocol.EnrolStartRequest{Token: tok}); err != nil {
		t.Fatalf("token consumed by a failed proof: %v", err)
	}
}

func TestRecoveryRebindsAndRevokes(t *testing.T) {
	a, _ := openTest(t)
	tok, _ := a.CreateToken("a", 0)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r1 := enrolOK(t, a, tok, k1)
	rec, err := a.CreateRecoveryToken(r1.ConnectorID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := a.Connector(r1.ConnectorID); c.Status != StatusNeedsRecovery {
		t.Errorf("status after recovery token = %s, want needs_recovery", c.Status)
	}
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ch, _ := a.StartEnrol(protocol.EnrolStartRequest{Token: rec})
	if !ch.Recovery || ch.ConnectorID != r1.ConnectorID {
		t.Errorf("challenge = %+v, want recovery of %s", ch, r1.ConnectorID)
	}
	r2, err := a.FinishEnrol(answer(t, ch, k2))
	if err != nil {
		t.Fatal(err)
	}
	if r2.ConnectorID != r1.ConnectorID || !r2.Recovery {
		t.Errorf("recovery gave %s (recovery=%v), want %s", r2.ConnectorID, r2.Recovery, r1.ConnectorID)
	}
	parse := func(p string) *x509.Certificate {
		b, _ := pem.Decode([]byte(p))
		c, _ := x509.ParseCertificate(b.Bytes)
		return c
	}
	if _, err := a.Authenticate(parse(r1.CertificatePEM)); code(err) != protocol.CodeCertRevoked {
		t.Errorf("old certificate: Authenticate = %v, want cert_revoked", err)
	}
	if id, err := a.Authenticate(parse(r2.CertificatePEM)); err != nil || id != r1.ConnectorID {
		t.Errorf("new certificate: Authenticate = %q, %v", id, err)
	}
	if c, _ := a.Connector(r1.ConnectorID); c.Status != StatusPending {
		t.Errorf("status after recovery = %s, want pending", c.Status)
	}
	if _, err := a.CreateRecoveryToken("conn-nope", 0); err == nil {
		t.Error("recovery token for an unknown connector")
	}
}

func TestStatePersistsAndLocks(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenAuthority(DefaultAuthorityConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAuthority(DefaultAuthorityConfig(dir)); !errors.Is(err, ErrStateLocked) {
		t.Fatalf("second OpenAuthority = %v, want ErrStateLocked", err)
	}
	tok, _ := a.CreateToken("a", 0)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	res := enrolOK(t, a, tok, key)
	a.SetStatus(res.ConnectorID, StatusOnline, "")
	caPEM := a.CA().CertPEM
	a.Close()

	b, err := OpenAuthority(DefaultAuthorityConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if string(b.CA().CertPEM) != string(caPEM) {
		t.Error("CA changed across restarts")
	}
	c, ok := b.Connector(res.ConnectorID)
	if !ok || c.Status != StatusOffline {
		t.Errorf("after restart connector = %+v, want offline", c)
	}
	if _, err := b.StartEnrol(protocol.EnrolStartRequest{Token: tok}); code(err) != protocol.CodeTokenUsed {
		t.Errorf("used token after restart: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "ca-key.pem")); fi.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem mode %v", fi.Mode().Perm())
	}
}

// Renewal proves possession of the current key only: a CSR for another
// key is refused (a new key takes a recovery token).
func TestRenewOnlyForTheSameKey(t *testing.T) {
	a, _ := openTest(t)
	tok, _ := a.CreateToken("dc1", 0)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	res := enrolOK(t, a, tok, key)
	blk, _ := pem.Decode([]byte(res.CertificatePEM))
	cur, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	csrFor := func(k *ecdsa.PrivateKey) *x509.CertificateRequest {
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
		csr, _ := x509.ParseCertificateRequest(der)
		return csr
	}
	if _, err := a.Renew(res.ConnectorID, cur, csrFor(key)); err != nil {
		t.Errorf("Renew for the same key = %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := a.Renew(res.ConnectorID, cur, csrFor(other)); err == nil || !strings.Contains(err.Error(), "not for the key") {
		t.Errorf("Renew for another key = %v, want refused", err)
	}
}
