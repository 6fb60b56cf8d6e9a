package lab

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// Pairing (protocol/pair.go): a connector asks for a pairing, an
// administrator approves its user code on the approval page (pairpage.go)
// or with `vaultpam-lab pair approve`, and the connector's next poll gets a
// single-use enrolment or recovery token made for that pairing alone.
//
// Pairings are kept in state.json with the device code's SHA-256 only; the
// user code is public and kept as is. A token is made when the approved
// pairing is collected, not at approval, so no token exists that nobody
// holds; polling again for an approved pairing makes a new token and voids
// the previous one while it is unused (a lost answer), and once a token of
// the pairing enrolled, the pairing is complete and its device code is
// refused.

// Pairing statuses.
const (
	PairPending   = "pending"   // shown on a console, waiting for a decision
	PairApproved  = "approved"  // approved; the connector has not collected its token yet
	PairDenied    = "denied"    // denied by an administrator
	PairCollected = "collected" // the connector collected its token (it enrols with it)
	PairExpired   = "expired"   // expired undecided (computed, never stored)
)

// Pairing defaults.
const (
	DefaultPairTTL      = 10 * time.Minute
	DefaultPairInterval = 5 * time.Second
	// pairCollectGrace is how long an approved pairing can be collected
	// after its approval even when the codes expire meanwhile.
	pairCollectGrace = 2 * time.Minute
	// pairTokenTTL is the life of the token a pairing hands out: it is
	// presented at once.
	pairTokenTTL = 10 * time.Minute
	// pairKeep is how long a finished or expired pairing stays listed.
	pairKeep = time.Hour
	// Live pairings at once, per client address and in all.
	maxPairingsPerClient = 20
	maxPairings          = 1000
)

// pairingRecord is a pairing as stored.
type pairingRecord struct {
	ID         string                    `json:"id"`
	DeviceHash string                    `json:"device_hash"` // hex SHA-256 of the device code; never the code
	UserCode   string                    `json:"user_code"`   // canonical
	Request    protocol.PairStartRequest `json:"request"`
	RemoteAddr string                    `json:"remote_addr"` // the IP the request came from
	CreatedAt  time.Time                 `json:"created_at"`
	ExpiresAt  time.Time                 `json:"expires_at"`
	Status     string                    `json:"status"`
	// The decision: the connector's name, the connector a recovery
	// re-binds, who decided (the page's client address or "cli") and when.
	Name      string    `json:"name,omitempty"`
	Recover   string    `json:"recover,omitempty"`
	DecidedBy string    `json:"decided_by,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// TokenHash is the latest token handed out for it.
	TokenHash string `json:"token_hash,omitempty"`

	// Polling, in memory only.
	interval time.Duration
	lastPoll time.Time
}

// Pairing is a pairing as the approval page, the CLI and tests see it.
type Pairing struct {
	UserCode     string    `json:"user_code"` // as shown: XXXX-XXXX
	Status       string    `json:"status"`
	Name         string    `json:"name"` // the connector's configured name, or the one approved
	Hostname     string    `json:"hostname,omitempty"`
	Addresses    []string  `json:"addresses,omitempty"`
	Version      string    `json:"version,omitempty"`
	ImageVersion string    `json:"image_version,omitempty"`
	RemoteAddr   string    `json:"remote_addr"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	// ConnectorID is the previous ID the connector named; KnownAs is that
	// connector's name when this control plane knows it.
	ConnectorID string `json:"connector_id,omitempty"`
	KnownAs     string `json:"known_as,omitempty"`
	// Candidate is the connector the approval page offers to recover: the
	// one the connector named, or else (a connector that lost its data
	// directory knows no ID) the latest one of the same name that is not
	// online. CandidateWhy says which, for the page.
	Candidate     string `json:"candidate,omitempty"`
	CandidateName string `json:"candidate_name,omitempty"`
	CandidateWhy  string `json:"candidate_why,omitempty"`
	// Recover is the connector an approval as recovery re-binds.
	Recover   string    `json:"recover,omitempty"`
	DecidedBy string    `json:"decided_by,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// Enrolled is the connector a collected pairing's token enrolled, once
	// it has.
	Enrolled string `json:"enrolled,omitempty"`
}

// Errors of the pairing lookups and decisions (the approval page counts
// ErrPairCodeTypo and ErrPairCodeUnknown as failed guesses).
var (
	ErrPairCodeTypo    = errors.New("the code has a typo")
	ErrPairCodeUnknown = errors.New("no pairing has this code")
	ErrPairCodeExpired = errors.New("the code expired")
	ErrPairCodeUsed    = errors.New("the code was used already")
)

// PairOrigin is where a pairing request came from.
type PairOrigin struct {
	RemoteAddr string // client IP
	// BaseURL is the control plane as the connector reached it
	// (https://HOST:PORT); the verification URIs are built on it.
	BaseURL string
}

// StartPairing opens a pairing for a connector (PairStartPath).
func (a *Authority) StartPairing(req protocol.PairStartRequest, from PairOrigin) (protocol.PairStart, error) {
	if err := checkPairRequest(req); err != nil {
		return protocol.PairStart{}, apiErr(http.StatusBadRequest, protocol.CodeBadRequest, "%s", err)
	}
	device, err := protocol.NewDeviceCode(a.cfg.Rand)
	if err != nil {
		return protocol.PairStart{}, apiErr(http.StatusInternalServerError, protocol.CodeInternal, "reading randomness")
	}
	idb := make([]byte, 8)
	if _, err := io.ReadFull(a.cfg.Rand, idb); err != nil {
		return protocol.PairStart{}, apiErr(http.StatusInternalServerError, protocol.CodeInternal, "reading randomness")
	}
	now := a.cfg.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prunePairingsLocked(now)
	live, fromClient := 0, 0
	for _, p := range a.st.Pairings {
		if p.Status == PairPending && now.Before(p.ExpiresAt) {
			live++
			if p.RemoteAddr == from.RemoteAddr {
				fromClient++
			}
		}
	}
	if fromClient >= maxPairingsPerClient || live >= maxPairings {
		return protocol.PairStart{}, apiErr(http.StatusTooManyRequests, protocol.CodePairRateLimited,
			"too many pairings waiting for approval (%d from this address, %d in all); approve or let some expire", fromClient, live)
	}
	var user string
	for {
		user, err = protocol.NewUserCode(a.cfg.Rand)
		if err != nil {
			return protocol.PairStart{}, apiErr(http.StatusInternalServerError, protocol.CodeInternal, "reading randomness")
		}
		if a.pairingByUserLocked(user) == nil {
			break
		}
	}
	p := &pairingRecord{ID: hex.EncodeToString(idb), DeviceHash: tokenHash(device), UserCode: user, Request: req,
		RemoteAddr: from.RemoteAddr, CreatedAt: now, ExpiresAt: now.Add(a.cfg.PairTTL), Status: PairPending, interval: a.cfg.PairInterval}
	a.st.Pairings = append(a.st.Pairings, p)
	if err := a.st.save(a.cfg.StateDir); err != nil {
		a.st.Pairings = a.st.Pairings[:len(a.st.Pairings)-1]
		return protocol.PairStart{}, apiErr(http.StatusInternalServerError, protocol.CodeInternal, "saving state failed")
	}
	return protocol.PairStart{
		DeviceCode: device, UserCode: user,
		VerificationURI:         protocol.PairPageURL(from.BaseURL, ""),
		VerificationURIComplete: protocol.PairPageURL(from.BaseURL, user),
		ExpiresIn:               int(a.cfg.PairTTL / time.Second),
		Interval:                int((a.cfg.PairInterval + time.Second - 1) / time.Second),
	}, nil
}

// nameRE is what a connector name may be (as connector_name).
var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

func checkPairRequest(r protocol.PairStartRequest) error {
	var errs []error
	if !nameRE.MatchString(r.Name) {
		errs = append(errs, errors.New("name must be 1 to 63 letters, digits, '.', '-' or '_'"))
	}
	if len(r.Hostname) > 253 || len(r.Version) > 64 || len(r.ImageVersion) > 64 || len(r.ConnectorID) > 64 || len(r.Addresses) > 32 {
		errs = append(errs, errors.New("hostname, versions, connector ID or address list too long"))
	}
	for _, s := range r.Addresses {
		if len(s) > 64 {
			errs = append(errs, errors.New("an address is too long"))
			break
		}
	}
	return errors.Join(errs...)
}

// PollPairing answers a connector's poll (PairPollPath): the token once
// approved, else an *APIError with one of the protocol.CodePair* codes.
func (a *Authority) PollPairing(deviceCode string) (protocol.PairResult, error) {
	if !protocol.ValidDeviceCode(deviceCode) {
		return protocol.PairResult{}, apiErr(http.StatusBadRequest, protocol.CodePairUnknown, "device code is malformed")
	}
	now := a.cfg.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pairingByDeviceLocked(tokenHash(deviceCode))
	if p == nil {
		return protocol.PairResult{}, apiErr(http.StatusBadRequest, protocol.CodePairUnknown, "no pairing has this device code (the control plane may have forgotten an old one): start a new pairing")
	}
	switch p.Status {
	case PairDenied:
		return protocol.PairResult{}, apiErr(http.StatusBadRequest, protocol.CodePairDenied, "an administrator denied the pairing of code %s", protocol.FormatUserCode(p.UserCode))
	case PairPending:
		if !now.Before(p.ExpiresAt) {
			return protocol.PairResult{}, apiErr(http.StatusBadRequest, protocol.CodePairExpired, "code %s expired at %s without an approval", protocol.FormatUserCode(p.UserCode), p.ExpiresAt.Format(time.RFC3339))
		}
		if p.interval == 0 {
			p.interval = a.cfg.PairInterval // after a restart
		}
		early := !p.lastPoll.IsZero() && now.Sub(p.lastPoll) < p.interval*9/10
		p.lastPoll = now
		if early {
			p.interval += protocol.PairSlowDownStep * time.Second
			return protocol.PairResult{}, apiErr(http.StatusBadRequest, protocol.CodePairSlowDown, "polling faster than every %s: slow down", p.interval-protocol.PairSlowDownStep*time.Second)
		}
		return protocol.PairResult{}, apiErr(http.StatusBadRequest, protocol.CodePairPending, "waiting for an administrator to approve code %s", protocol.FormatUserCode(p.UserCode))
	}
	// Approved or collected before.
	if prev := a.st.token(p.TokenHash); prev != nil && !prev.UsedAt.IsZero() {
		return protocol.PairResult{}, apiErr(http.StatusBadRequest, protocol.CodePairUnknown, "this pairing is complete: its token enrolled connector %s", prev.ConnectorID)
	}
	if now.After(p.ExpiresAt) && now.After(p.DecidedAt.Add(pairCollectGrace)) {
		return protocol.PairResult{}, apiErr(http.StatusBadRequest, protocol.CodePairExpired, "the approval of code %s was not collected in time: start a new pairing", protocol.FormatUserCode(p.UserCode))
	}
	if p.Recover != "" && a.st.connector(p.Recover) == nil {
		return protocol.PairResult{}, apiErr(http.StatusBadRequest, protocol.CodePairDenied, "the connector %s this pairing was to recover no longer exists", p.Recover)
	}
	tok, err := protocol.NewToken(a.cfg.Rand)
	if err != nil {
		return protocol.PairResult{}, apiErr(http.StatusInternalServerError, protocol.CodeInternal, "reading randomness")
	}
	prev := a.st.token(p.TokenHash)
	prevExpiry, prevStatus, prevHash := time.Time{}, p.Status, p.TokenHash
	if prev != nil {
		prevExpiry = prev.ExpiresAt
		prev.ExpiresAt = now // void the unused one: its answer was lost
	}
	rec := &tokenRecord{Hash: tokenHash(tok), Name: p.Name, Recovery: p.Recover, Pairing: p.ID, CreatedAt: now, ExpiresAt: now.Add(pairTokenTTL)}
	a.st.Tokens = append(a.st.Tokens, rec)
	p.TokenHash, p.Status = rec.Hash, PairCollected
	var recovering *Connector
	var oldStatus, oldReason string
	if c := a.st.connector(p.Recover); c != nil && c.Status != StatusOnline {
		recovering, oldStatus, oldReason = c, c.Status, c.StatusReason
		c.Status, c.StatusReason = StatusNeedsRecovery, "recovery approved by pairing; waiting for the connector to enrol"
	}
	if err := a.st.save(a.cfg.StateDir); err != nil {
		a.st.Tokens = a.st.Tokens[:len(a.st.Tokens)-1]
		p.TokenHash, p.Status = prevHash, prevStatus
		if prev != nil {
			prev.ExpiresAt = prevExpiry
		}
		if recovering != nil {
			recovering.Status, recovering.StatusReason = oldStatus, oldReason
		}
		return protocol.PairResult{}, apiErr(http.StatusInternalServerError, protocol.CodeInternal, "saving state failed")
	}
	return protocol.PairResult{Token: tok, Recovery: p.Recover != "", ConnectorID: p.Recover, Name: p.Name}, nil
}

// LookupPairing finds the pending pairing a typed or scanned user code
// names. Errors wrap ErrPairCodeTypo (malformed or a typo: nothing was
// looked up), ErrPairCodeUnknown, ErrPairCodeExpired or ErrPairCodeUsed.
func (a *Authority) LookupPairing(typed string) (Pairing, error) {
	code, err := protocol.ParseUserCode(typed)
	if err != nil {
		return Pairing{}, fmt.Errorf("%w: %w", ErrPairCodeTypo, err)
	}
	now := a.cfg.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pairingByUserLocked(code)
	if p == nil {
		return Pairing{}, fmt.Errorf("%w: check the code on the connector's console", ErrPairCodeUnknown)
	}
	v := a.viewLocked(p, now)
	switch v.Status {
	case PairExpired:
		return v, fmt.Errorf("%w at %s; the console shows a new code by itself", ErrPairCodeExpired, p.ExpiresAt.Format("15:04:05 MST"))
	case PairPending:
		return v, nil
	}
	return v, fmt.Errorf("%w: it was %s at %s", ErrPairCodeUsed, v.Status, p.DecidedAt.Format("15:04:05 MST"))
}

// PairDecision is an administrator's answer to a pairing.
type PairDecision struct {
	Approve bool
	// Name names a new connector (approval only; ignored for a recovery,
	// which keeps the connector's name). Empty: the name it asked with.
	Name string
	// Recover, if set, approves the pairing as a recovery of this
	// connector ID: its resources keep routing to it, and its previous
	// certificates are revoked when the connector enrols.
	Recover string
	// By says who decided (the page's client address, "cli").
	By string
}

// DecidePairing approves or denies the pending pairing with user code
// typed. An expired or used code is refused (LookupPairing's errors).
func (a *Authority) DecidePairing(typed string, d PairDecision) (Pairing, error) {
	code, err := protocol.ParseUserCode(typed)
	if err != nil {
		return Pairing{}, fmt.Errorf("%w: %w", ErrPairCodeTypo, err)
	}
	if _, err := a.LookupPairing(code); err != nil {
		return Pairing{}, err
	}
	now := a.cfg.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pairingByUserLocked(code)
	if v := a.viewLocked(p, now); v.Status != PairPending { // decided meanwhile
		return v, fmt.Errorf("%w: it was %s", ErrPairCodeUsed, v.Status)
	}
	name := d.Name
	if name == "" {
		name = p.Request.Name
	}
	if d.Approve && d.Recover != "" {
		c := a.st.connector(d.Recover)
		if c == nil {
			return Pairing{}, fmt.Errorf("no connector with ID %q to recover", d.Recover)
		}
		name = c.Name
	}
	if d.Approve && !nameRE.MatchString(name) {
		return Pairing{}, errors.New("the name must be 1 to 63 letters, digits, '.', '-' or '_'")
	}
	old := *p
	p.Status, p.DecidedBy, p.DecidedAt = PairDenied, d.By, now
	if d.Approve {
		p.Status, p.Name, p.Recover = PairApproved, name, d.Recover
	}
	if err := a.st.save(a.cfg.StateDir); err != nil {
		*p = old
		return Pairing{}, err
	}
	return a.viewLocked(p, now), nil
}

// ApprovePairing and DenyPairing implement Admin.
func (a *Authority) ApprovePairing(code, name, recover string) (Pairing, error) {
	return a.DecidePairing(code, PairDecision{Approve: true, Name: name, Recover: recover, By: "cli"})
}

// DenyPairing implements Admin.
func (a *Authority) DenyPairing(code string) (Pairing, error) {
	return a.DecidePairing(code, PairDecision{By: "cli"})
}

// ListPairings implements Admin: the pairings still kept, oldest first.
func (a *Authority) ListPairings() ([]Pairing, error) {
	now := a.cfg.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Pairing, 0, len(a.st.Pairings))
	for _, p := range a.st.Pairings {
		out = append(out, a.viewLocked(p, now))
	}
	return out, nil
}

func (a *Authority) viewLocked(p *pairingRecord, now time.Time) Pairing {
	r := p.Request
	v := Pairing{UserCode: protocol.FormatUserCode(p.UserCode), Status: p.Status, Name: r.Name, Hostname: r.Hostname,
		Addresses: slices.Clone(r.Addresses), Version: r.Version, ImageVersion: r.ImageVersion, RemoteAddr: p.RemoteAddr,
		CreatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt, ConnectorID: r.ConnectorID, Recover: p.Recover,
		DecidedBy: p.DecidedBy, DecidedAt: p.DecidedAt}
	if p.Name != "" {
		v.Name = p.Name
	}
	if p.Status == PairPending && !now.Before(p.ExpiresAt) {
		v.Status = PairExpired
	}
	if c := a.st.connector(r.ConnectorID); r.ConnectorID != "" && c != nil {
		v.KnownAs = c.Name
		v.Candidate, v.CandidateName, v.CandidateWhy = c.ID, c.Name, "the connector names it"
	} else if r.ConnectorID == "" {
		for _, c := range slices.Backward(a.st.Connectors) {
			if c.Name == r.Name && c.Status != StatusOnline {
				v.Candidate, v.CandidateName, v.CandidateWhy = c.ID, c.Name, "same name, "+c.Status
				break
			}
		}
	}
	if t := a.st.token(p.TokenHash); t != nil && !t.UsedAt.IsZero() {
		v.Enrolled = t.ConnectorID
	}
	return v
}

func (a *Authority) pairingByUserLocked(code string) *pairingRecord {
	for _, p := range a.st.Pairings {
		if p.UserCode == code {
			return p
		}
	}
	return nil
}

func (a *Authority) pairingByDeviceLocked(hash string) *pairingRecord {
	for _, p := range a.st.Pairings {
		if p.DeviceHash == hash {
			return p
		}
	}
	return nil
}

// prunePairingsLocked forgets pairings an hour after they ended.
func (a *Authority) prunePairingsLocked(now time.Time) {
	a.st.Pairings = slices.DeleteFunc(a.st.Pairings, func(p *pairingRecord) bool {
		end := p.ExpiresAt
		if p.DecidedAt.After(end) {
			end = p.DecidedAt
		}
		return now.After(end.Add(pairKeep))
	})
}
