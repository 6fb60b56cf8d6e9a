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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

var origin = PairOrigin{RemoteAddr: "192.0.2.10", BaseURL: "https://cp.example.com:8443"}

func startPair(t *testing.T, a *Authority, req protocol.PairStartRequest) protocol.PairStart {
	t.Helper()
	if req.Name == "" {
		req.Name = "dc1"
	}
	ps, err := a.StartPairing(req, origin)
	if err != nil {
		t.Fatalf("StartPairing = %v", err)
	}
	return ps
}

// poll polls after the interval has passed on clk.
func poll(a *Authority, clk *fakeClock, device string) (protocol.PairResult, error) {
	clk.Add(DefaultPairInterval)
	return a.PollPairing(device)
}

func TestPairingApprovedEnrolsLikeAToken(t *testing.T) {
	a, clk := openTest(t)
	ps := startPair(t, a, protocol.PairStartRequest{Hostname: "vaultpam-01", Addresses: []string{"192.0.2.10"}, ImageVersion: "0.1.0"})
	if _, err := protocol.ParseUserCode(ps.UserCode); err != nil {
		t.Fatalf("user code %q does not parse: %v", ps.UserCode, err)
	}
	if !protocol.ValidDeviceCode(ps.DeviceCode) || ps.ExpiresIn != 600 || ps.Interval != 5 {
		t.Errorf("StartPairing = %+v, want a device code, expires_in 600, interval 5", ps)
	}
	wantURI := "https://cp.example.com:8443/pair?code=" + protocol.FormatUserCode(ps.UserCode)
	if ps.VerificationURI != "https://cp.example.com:8443/pair" || ps.VerificationURIComplete != wantURI {
		t.Errorf("verification URIs = %q, %q; want …/pair and %q", ps.VerificationURI, ps.VerificationURIComplete, wantURI)
	}
	if _, err := poll(a, clk, ps.DeviceCode); code(err) != protocol.CodePairPending {
		t.Fatalf("poll before approval = %v, want authorization_pending", err)
	}
	p, err := a.LookupPairing(strings.ToLower(protocol.FormatUserCode(ps.UserCode)))
	if err != nil || p.Hostname != "vaultpam-01" || p.ImageVersion != "0.1.0" || p.RemoteAddr != "192.0.2.10" || p.Status != PairPending {
		t.Fatalf("LookupPairing = %+v, %v", p, err)
	}
	if _, err := a.ApprovePairing(ps.UserCode, "dc1-paired", ""); err != nil {
		t.Fatalf("ApprovePairing = %v", err)
	}
	res, err := poll(a, clk, ps.DeviceCode)
	if err != nil || res.Recovery || res.Name != "dc1-paired" {
		t.Fatalf("poll after approval = %+v, %v", res, err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	er := enrolOK(t, a, res.Token, key)
	b, _ := pem.Decode([]byte(er.CertificatePEM))
	cert, _ := x509.ParseCertificate(b.Bytes)
	if len(cert.URIs) != 1 || cert.URIs[0].String() != protocol.ConnectorURI(er.ConnectorID) {
		t.Errorf("certificate URIs = %v, want %s (as a token enrolment's)", cert.URIs, protocol.ConnectorURI(er.ConnectorID))
	}
	if c, _ := a.Connector(er.ConnectorID); c.Name != "dc1-paired" {
		t.Errorf("connector name = %q, want the approved dc1-paired", c.Name)
	}
	// Complete: the device code is refused, the code is used, the token
	// too; nothing secret is on disk.
	if _, err := poll(a, clk, ps.DeviceCode); code(err) != protocol.CodePairUnknown {
		t.Errorf("poll after enrolment = %v, want invalid_grant", err)
	}
	if _, err := a.LookupPairing(ps.UserCode); !errors.Is(err, ErrPairCodeUsed) {
		t.Errorf("LookupPairing after use = %v, want ErrPairCodeUsed", err)
	}
	if _, err := a.StartEnrol(protocol.EnrolStartRequest{Token: res.Token}); code(err) != protocol.CodeTokenUsed {
		t.Errorf("the pairing's token again = %v, want token_used", err)
	}
	ls, _ := a.ListPairings()
	if len(ls) != 1 || ls[0].Enrolled != er.ConnectorID || ls[0].Status != PairCollected {
		t.Errorf("ListPairings = %+v, want one collected pairing that enrolled %s", ls, er.ConnectorID)
	}
	st, _ := os.ReadFile(filepath.Join(a.cfg.StateDir, "state.json"))
	for _, secret := range []string{ps.DeviceCode, res.Token, protocol.FormatToken(res.Token)} {
		if strings.Contains(string(st), secret) {
			t.Errorf("state.json holds a secret in clear (%d characters)", len(secret))
		}
	}
}

func TestPairingSlowDown(t *testing.T) {
	a, clk := openTest(t)
	ps := startPair(t, a, protocol.PairStartRequest{})
	if _, err := a.PollPairing(ps.DeviceCode); code(err) != protocol.CodePairPending {
		t.Fatalf("first poll = %v, want authorization_pending", err)
	}
	clk.Add(time.Second)
	if _, err := a.PollPairing(ps.DeviceCode); code(err) != protocol.CodePairSlowDown {
		t.Fatalf("poll 1 s later (interval 5 s) = %v, want slow_down", err)
	}
	// The interval is now 10 s: 5 s is too early again, 10 s is fine.
	clk.Add(5 * time.Second)
	if _, err := a.PollPairing(ps.DeviceCode); code(err) != protocol.CodePairSlowDown {
		t.Fatalf("poll 5 s later after a slow_down = %v, want slow_down (interval 10 s)", err)
	}
	clk.Add(15 * time.Second)
	if _, err := a.PollPairing(ps.DeviceCode); code(err) != protocol.CodePairPending {
		t.Fatalf("poll 15 s later = %v, want authorization_pending", err)
	}
}

func TestPairingDenied(t *testing.T) {
	a, clk := openTest(t)
	ps := startPair(t, a, protocol.PairStartRequest{})
	if _, err := a.DenyPairing(protocol.FormatUserCode(ps.UserCode)); err != nil {
		t.Fatalf("DenyPairing = %v", err)
	}
	if _, err := poll(a, clk, ps.DeviceCode); code(err) != protocol.CodePairDenied {
		t.Errorf("poll after denial = %v, want access_denied", err)
	}
	if _, err := a.ApprovePairing(ps.UserCode, "", ""); !errors.Is(err, ErrPairCodeUsed) {
		t.Errorf("approving a denied code = %v, want ErrPairCodeUsed", err)
	}
	if _, err := poll(a, clk, ps.DeviceCode); code(err) != protocol.CodePairDenied {
		t.Errorf("poll after a late approval = %v, want access_denied still", err)
	}
}

// An expired code never enrols: it cannot be approved, and its device
// code gets expired_token.
func TestPairingExpiredNeverEnrols(t *testing.T) {
	a, clk := openTest(t)
	ps := startPair(t, a, protocol.PairStartRequest{})
	clk.Add(DefaultPairTTL)
	if _, err := a.ApprovePairing(ps.UserCode, "", ""); !errors.Is(err, ErrPairCodeExpired) {
		t.Errorf("approving an expired code = %v, want ErrPairCodeExpired", err)
	}
	if _, err := poll(a, clk, ps.DeviceCode); code(err) != protocol.CodePairExpired {
		t.Errorf("poll after expiry = %v, want expired_token", err)
	}
	// Approved in time but never collected within the grace: expired too.
	ps2 := startPair(t, a, protocol.PairStartRequest{})
	clk.Add(DefaultPairTTL - time.Second)
	if _, err := a.ApprovePairing(ps2.UserCode, "", ""); err != nil {
		t.Fatalf("approving in the last second = %v", err)
	}
	clk.Add(pairCollectGrace + time.Second)
	if _, err := a.PollPairing(ps2.DeviceCode); code(err) != protocol.CodePairExpired {
		t.Errorf("collecting an approval too late = %v, want expired_token", err)
	}
	if _, err := a.PollPairing("not-a-device-code"); code(err) != protocol.CodePairUnknown {
		t.Errorf("poll with a malformed device code = %v, want invalid_grant", err)
	}
	other, _ := protocol.NewDeviceCode(nil)
	if _, err := a.PollPairing(other); code(err) != protocol.CodePairUnknown {
		t.Errorf("poll with an unknown device code = %v, want invalid_grant", err)
	}
}

// A lost answer: polling again for the approved pairing makes a new token
// and voids the first, unused one.
func TestPairingLostAnswer(t *testing.T) {
	a, clk := openTest(t)
	ps := startPair(t, a, protocol.PairStartRequest{})
	a.ApprovePairing(ps.UserCode, "", "")
	first, err := poll(a, clk, ps.DeviceCode)
	if err != nil {
		t.Fatal(err)
	}
	second, err := poll(a, clk, ps.DeviceCode)
	if err != nil || second.Token == first.Token {
		t.Fatalf("second collection = %v, %v; want a new token", second.Token == first.Token, err)
	}
	if _, err := a.StartEnrol(protocol.EnrolStartRequest{Token: first.Token}); code(err) != protocol.CodeTokenExpired {
		t.Errorf("the voided first token = %v, want token_expired", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	enrolOK(t, a, second.Token, key)
}

// Approved as a recovery, the pairing's token re-binds the connector ID
// and revokes its old certificates, as a recovery token does.
func TestPairingRecovery(t *testing.T) {
	a, clk := openTest(t)
	tok, _ := a.CreateToken("dc1", 0)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	first := enrolOK(t, a, tok, key)
	old, _ := a.Connector(first.ConnectorID)

	ps := startPair(t, a, protocol.PairStartRequest{Name: "dc1", ConnectorID: first.ConnectorID})
	p, err := a.LookupPairing(ps.UserCode)
	if err != nil || p.KnownAs != "dc1" || p.ConnectorID != first.ConnectorID {
		t.Fatalf("LookupPairing = %+v, %v; want it to know %s as dc1", p, err, first.ConnectorID)
	}
	if _, err := a.ApprovePairing(ps.UserCode, "ignored", "conn-nosuch"); err == nil {
		t.Error("approving as recovery of an unknown connector succeeded")
	}
	if _, err := a.ApprovePairing(ps.UserCode, "ignored", first.ConnectorID); err != nil {
		t.Fatalf("ApprovePairing as recovery = %v", err)
	}
	res, err := poll(a, clk, ps.DeviceCode)
	if err != nil || !res.Recovery || res.ConnectorID != first.ConnectorID || res.Name != "dc1" {
		t.Fatalf("poll = %+v, %v; want a recovery of %s named dc1", res, err, first.ConnectorID)
	}
	key2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	again := enrolOK(t, a, res.Token, key2)
	if again.ConnectorID != first.ConnectorID || !again.Recovery {
		t.Errorf("recovery enrolment = %s (recovery %v), want %s", again.ConnectorID, again.Recovery, first.ConnectorID)
	}
	c, _ := a.Connector(first.ConnectorID)
	if !slices.Contains(c.Revoked, old.Serials[0]) {
		t.Errorf("old certificate %s not revoked: %v", old.Serials[0], c.Revoked)
	}
}

func TestPairingLookupErrors(t *testing.T) {
	a, _ := openTest(t)
	ps := startPair(t, a, protocol.PairStartRequest{})
	c := ps.UserCode
	typo := c[:2] + string("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[(strings.IndexByte("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c[2])+1)%32]) + c[3:]
	for _, tc := range []struct {
		in   string
		want error
	}{
		{typo, ErrPairCodeTypo},
		{"ABC", ErrPairCodeTypo},
		{"", ErrPairCodeTypo},
	} {
		if _, err := a.LookupPairing(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("LookupPairing(%q) = %v, want %v", tc.in, err, tc.want)
		}
	}
	var unknown string
	for {
		unknown, _ = protocol.NewUserCode(nil)
		if unknown != c {
			break
		}
	}
	if _, err := a.LookupPairing(unknown); !errors.Is(err, ErrPairCodeUnknown) {
		t.Errorf("LookupPairing(unknown) = %v, want ErrPairCodeUnknown", err)
	}
	if _, err := a.StartPairing(protocol.PairStartRequest{Name: "a b"}, origin); code(err) != protocol.CodeBadRequest {
		t.Errorf("StartPairing with a bad name = %v, want bad_request", err)
	}
}

// A client cannot keep more than maxPairingsPerClient pairings waiting.
func TestPairingStartLimit(t *testing.T) {
	a, _ := openTest(t)
	for range maxPairingsPerClient {
		startPair(t, a, protocol.PairStartRequest{})
	}
	if _, err := a.StartPairing(protocol.PairStartRequest{Name: "dc1"}, origin); code(err) != protocol.CodePairRateLimited {
		t.Errorf("pairing %d from one address = %v, want rate_limited", maxPairingsPerClient+1, err)
	}
	if _, err := a.StartPairing(protocol.PairStartRequest{Name: "dc1"}, PairOrigin{RemoteAddr: "192.0.2.11", BaseURL: origin.BaseURL}); err != nil {
		t.Errorf("a pairing from another address = %v", err)
	}
}

// A connector that lost its data directory knows no ID: the page offers
// the latest connector of the same name that is not online.
func TestPairingSameNameCandidate(t *testing.T) {
	a, _ := openTest(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok, _ := a.CreateToken("dc5", 0)
	lost := enrolOK(t, a, tok, key)
	tok2, _ := a.CreateToken("dc6", 0)
	other := enrolOK(t, a, tok2, key)
	a.SetStatus(other.ConnectorID, StatusOnline, "")
	ps := startPair(t, a, protocol.PairStartRequest{Name: "dc5"})
	p, _ := a.LookupPairing(ps.UserCode)
	if p.Candidate != lost.ConnectorID || p.CandidateWhy != "same name, pending" || p.KnownAs != "" {
		t.Errorf("candidate = %q (%q), want %s by its name", p.Candidate, p.CandidateWhy, lost.ConnectorID)
	}
	ps = startPair(t, a, protocol.PairStartRequest{Name: "dc6"})
	if p, _ := a.LookupPairing(ps.UserCode); p.Candidate != "" {
		t.Errorf("an online connector of the same name is offered for recovery: %s", p.Candidate)
	}
	ps = startPair(t, a, protocol.PairStartRequest{Name: "dc5", ConnectorID: "conn-elsewhere"})
	if p, _ := a.LookupPairing(ps.UserCode); p.Candidate != "" || p.KnownAs != "" {
		t.Errorf("a request naming an unknown ID gets candidate %q", p.Candidate)
	}
}
