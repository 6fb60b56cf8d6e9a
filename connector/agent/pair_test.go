package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab"
)

// pairingLab is a lab that pairs with a 1 s poll interval.
func pairingLab(t *testing.T, opts ...lab.TestOption) *lab.TestServer {
	return lab.NewTest(t, append([]lab.TestOption{lab.WithHeartbeat(time.Second), lab.WithPairing(0, time.Second)}, opts...)...)
}

// pairingOptions are an agent's options against cp, with the real tunnel,
// no token, and a fixed hostname and addresses for the approval page.
func pairingOptions(cp *lab.TestServer, store identity.Store) Options {
	tc := tunnel.DefaultConfig()
	tc.Address = cp.Addr().String()
	tc.RootCAs = cp.CAPool
	tc.Name, tc.Version = "dc1", "test"
	return Options{
		Config:   config.Config{ControlPlaneURL: cp.URL(), ConnectorName: "dc1", DrainTimeout: config.Duration(time.Second)},
		Store:    store,
		Mode:     durable,
		DataDir:  "/data",
		Enroller: &enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool, Name: "dc1"},
		Link:     TunnelLink(tc),
		Version:  "0.9.0",
		Hostname: func() (string, error) { return "vaultpam-test", nil },
		LocalAddrs: func() ([]netip.Prefix, error) {
			return []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("198.51.100.20/24")}, nil
		},
	}
}

// startPairing asks the agent to pair and returns the code it shows.
func startPairing(t *testing.T, r *run) localapi.Pairing {
	t.Helper()
	p, err := r.StartPairing(context.Background())
	if err != nil || p.UserCode == "" {
		t.Fatalf("StartPairing = %+v, %v; want a code", p, err)
	}
	return p
}

// nextCode waits until the status shows a pairing code other than not.
func nextCode(t *testing.T, r *run, not string) localapi.Pairing {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if st := r.Status(); st.Pairing != nil && st.Pairing.UserCode != not {
			return *st.Pairing
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no new pairing code; state %s (%s)", r.State(), r.Status().Reason)
	return localapi.Pairing{}
}

func statesOf(trs []Transition) []state.State {
	var out []state.State
	for _, tr := range trs {
		if len(out) == 0 || out[len(out)-1] != tr.To {
			out = append(out, tr.To)
		}
	}
	return out
}

// Approved on the control plane, the connector enrols with the pairing's
// token and goes Online with an identity like a token enrolment's.
func TestPairApprovedGoesOnline(t *testing.T) {
	cp := pairingLab(t)
	store := &identity.Mem{}
	r := launch(t, pairingOptions(cp, store))
	p := startPairing(t, r)
	st := r.Status()
	if st.State != "pairing" || st.StateLabel != "Pairing" || st.Pairing == nil || *st.Pairing != p {
		t.Fatalf("status while pairing = %s / %s, pairing %+v; want pairing with %+v", st.State, st.StateLabel, st.Pairing, p)
	}
	if !strings.HasPrefix(p.VerificationURLComplete, cp.URL()+"/pair?code=") || p.VerificationURL != cp.URL()+"/pair" || len(p.UserCode) != 9 {
		t.Errorf("pairing = %+v, want a XXXX-XXXX code on %s/pair", p, cp.URL())
	}
	if again := startPairing(t, r); again != p {
		t.Errorf("StartPairing while pairing = %+v, want the same %+v", again, p)
	}
	// The approval page's view of the request.
	lp, err := cp.Authority.LookupPairing(p.UserCode)
	if err != nil || lp.Hostname != "vaultpam-test" || !slices.Equal(lp.Addresses, []string{"198.51.100.20"}) || lp.Version != "0.9.0" || lp.Name != "dc1" {
		t.Fatalf("the lab sees %+v, %v; want hostname, the non-loopback address, version", lp, err)
	}
	if _, err := cp.Authority.ApprovePairing(p.UserCode, "dc1-paired", ""); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, state.Online)
	want := []state.State{state.Pairing, state.Enrolling, state.Connecting, state.Online}
	if got := statesOf(r.History()); !slices.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
	id, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if u := id.Leaf().URIs; len(u) != 1 || u[0].String() != protocol.ConnectorURI(id.ConnectorID) {
		t.Errorf("certificate URIs = %v, want %s as after a token enrolment", u, protocol.ConnectorURI(id.ConnectorID))
	}
	if c, ok := cp.Authority.Connector(id.ConnectorID); !ok || c.Name != "dc1-paired" || c.Status != lab.StatusOnline {
		t.Errorf("lab registry = %+v, want dc1-paired online", c)
	}
	if st := r.Status(); st.Pairing != nil || st.ConnectorID != id.ConnectorID {
		t.Errorf("status online = pairing %+v, connector %s", st.Pairing, st.ConnectorID)
	}
}

func TestPairDeniedGoesBack(t *testing.T) {
	cp := pairingLab(t)
	r := launch(t, pairingOptions(cp, &identity.Mem{}))
	p := startPairing(t, r)
	if _, err := cp.Authority.DenyPairing(p.UserCode); err != nil {
		t.Fatal(err)
	}
	tr := r.waitFor(t, state.AwaitingToken)
	if !strings.Contains(tr.Reason, "denied the pairing of code "+p.UserCode) {
		t.Errorf("reason = %q, want it to say the code was denied", tr.Reason)
	}
	if st := r.Status(); st.Pairing != nil || st.Hint == "" {
		t.Errorf("status after denial: pairing %+v, hint %q; want no pairing and a hint", st.Pairing, st.Hint)
	}
	// Stopped on request: back at once; a typed token ends a pairing too.
	startPairing(t, r)
	if err := r.StopPairing(context.Background()); err != nil {
		t.Fatalf("StopPairing = %v", err)
	}
	if st := r.State(); st != state.AwaitingToken {
		t.Fatalf("state after StopPairing = %s", st)
	}
	var le *localapi.Error
	if err := r.StopPairing(context.Background()); !errors.As(err, &le) || le.Code != "not_pairing" {
		t.Errorf("StopPairing when not pairing = %v, want not_pairing", err)
	}
	startPairing(t, r)
	if err := r.submit(t, newToken(t, cp)); err != nil {
		t.Fatalf("a token while pairing = %v", err)
	}
	r.waitFor(t, state.Online)
	if _, err := r.StartPairing(context.Background()); !errors.As(err, &le) || le.Code != "not_pairable" {
		t.Errorf("StartPairing while online = %v, want not_pairable", err)
	}
}

// A code that expires is replaced by a new one by itself, and the new one
// works.
func TestPairExpiredCodeIsReplaced(t *testing.T) {
	clk := &testClock{t: time.Now()}
	cp := pairingLab(t, lab.WithNow(clk.Now))
	r := launch(t, pairingOptions(cp, &identity.Mem{}))
	first := startPairing(t, r)
	clk.Add(lab.DefaultPairTTL)
	second := nextCode(t, r, first.UserCode)
	if r.State() != state.Pairing {
		t.Fatalf("state after expiry = %s, want pairing", r.State())
	}
	if !slices.ContainsFunc(r.History(), func(tr Transition) bool { return strings.Contains(tr.Reason, "code "+first.UserCode+" expired") }) {
		t.Errorf("no transition says code %s expired: %v", first.UserCode, r.History())
	}
	if _, err := cp.Authority.ApprovePairing(first.UserCode, "", ""); err == nil {
		t.Error("the expired first code was approved")
	}
	// The lab's clock back to the connector's, so the certificate it
	// issues is valid now (the new code expires later still).
	clk.Add(-lab.DefaultPairTTL)
	if _, err := cp.Authority.ApprovePairing(second.UserCode, "", ""); err != nil {
		t.Fatalf("approving the new code: %v", err)
	}
	r.waitFor(t, state.Online)
}

// Needs recovery: the pairing names the connector's ID, an approval as
// recovery re-binds it and revokes the old certificate.
func TestPairRecovery(t *testing.T) {
	cp := pairingLab(t)
	store := &identity.Mem{}
	o := pairingOptions(cp, store)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	o.Token = tok
	r := launch(t, o)
	r.waitFor(t, state.Online)
	old := r.Identity()
	if err := cp.Authority.Revoke(old.ConnectorID); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, state.NeedsRecovery)
	p := startPairing(t, r)
	lp, err := cp.Authority.LookupPairing(p.UserCode)
	if err != nil || lp.ConnectorID != old.ConnectorID || lp.KnownAs != "dc1" {
		t.Fatalf("the lab sees %+v, %v; want the request to name %s", lp, err, old.ConnectorID)
	}
	if _, err := cp.Authority.ApprovePairing(p.UserCode, "", old.ConnectorID); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, state.Online)
	id := r.Identity()
	if id.ConnectorID != old.ConnectorID || id.Leaf().SerialNumber.Cmp(old.Leaf().SerialNumber) == 0 {
		t.Errorf("after recovery: %s serial %s, want %s with a new certificate", id.ConnectorID, id.Leaf().SerialNumber, old.ConnectorID)
	}
	c, _ := cp.Authority.Connector(old.ConnectorID)
	if !slices.Contains(c.Revoked, old.Leaf().SerialNumber.Text(16)) || slices.Contains(c.Revoked, id.Leaf().SerialNumber.Text(16)) {
		t.Errorf("revoked serials = %v: want the old one, not the new one", c.Revoked)
	}
}

// slow_down adds 5 s to the poll interval for good.
func TestPairHonoursSlowDown(t *testing.T) {
	cp := pairingLab(t)
	var mu sync.Mutex
	var waits []time.Duration
	o := pairingOptions(cp, &identity.Mem{})
	// No real waiting: every poll after the first comes too early for the
	// lab, which answers slow_down.
	o.PollWait = func(ctx context.Context, d time.Duration) bool {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err() == nil
	}
	r := launch(t, o)
	p := startPairing(t, r)
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := len(waits)
		mu.Unlock()
		if n >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	got := slices.Clone(waits[:4])
	mu.Unlock()
	want := []time.Duration{time.Second, time.Second, 6 * time.Second, 11 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("poll waits = %v, want %v (slow_down adds 5 s each time)", got, want)
	}
	cp.Authority.ApprovePairing(p.UserCode, "", "")
	r.waitFor(t, state.Online)
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recordingPairer remembers the secrets the control plane handed out.
type recordingPairer struct {
	Pairer
	mu      sync.Mutex
	secrets []string
}

func (p *recordingPairer) StartPairing(ctx context.Context, req protocol.PairStartRequest) (protocol.PairStart, error) {
	ps, err := p.Pairer.StartPairing(ctx, req)
	p.mu.Lock()
	p.secrets = append(p.secrets, ps.DeviceCode)
	p.mu.Unlock()
	return ps, err
}

func (p *recordingPairer) PollPairing(ctx context.Context, device string) (protocol.PairResult, error) {
	r, err := p.Pairer.PollPairing(ctx, device)
	if err == nil {
		p.mu.Lock()
		p.secrets = append(p.secrets, r.Token, protocol.FormatToken(r.Token))
		p.mu.Unlock()
	}
	return r, err
}

// The device code and the pairing's token reach neither the log, the
// status, the state history nor the data directory.
func TestPairSecretsStayInMemory(t *testing.T) {
	cp := pairingLab(t)
	dir := t.TempDir()
	o := pairingOptions(cp, &identity.Dir{Path: dir})
	rec := &recordingPairer{Pairer: o.Enroller.(Pairer)}
	o.Pairer = rec
	var logs syncBuffer
	o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := launch(t, o)
	p := startPairing(t, r)
	status, _ := json.Marshal(r.Status())
	cp.Authority.ApprovePairing(p.UserCode, "", "")
	r.waitFor(t, state.Online)
	rec.mu.Lock()
	secrets := slices.Clone(rec.secrets)
	rec.mu.Unlock()
	if len(secrets) != 3 {
		t.Fatalf("recorded %d secrets, want the device code and the token", len(secrets))
	}
	var history strings.Builder
	for _, tr := range r.History() {
		history.WriteString(tr.Reason + "\n")
	}
	final, _ := json.Marshal(r.Status())
	places := map[string]string{"log": logs.String(), "status while pairing": string(status), "status online": string(final), "history": history.String()}
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		b, _ := os.ReadFile(filepath.Join(dir, f.Name()))
		places["data dir "+f.Name()] = string(b)
	}
	for where, text := range places {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("the %s holds a secret (%d characters)", where, len(s))
			}
		}
	}
	if !strings.Contains(logs.String(), p.UserCode) {
		t.Errorf("the log does not name the (public) user code %s", p.UserCode)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
