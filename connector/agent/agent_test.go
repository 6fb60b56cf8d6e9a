package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

var durable = identity.Mode{Name: identity.ModeAutonomousRestart, Durable: true, FSType: "0xef53"}

// run is one agent process against a lab control plane.
type run struct {
	*Agent
	trs    chan Transition
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cp *lab.TestServer, store identity.Store, mode identity.Mode, token string) *run {
	t.Helper()
	return launch(t, Options{
		Config:   config.Config{ControlPlaneURL: cp.URL(), ConnectorName: "dc1", DrainTimeout: config.Duration(time.Second)},
		Store:    store,
		Mode:     mode,
		DataDir:  "/data",
		Enroller: &enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool, Name: "dc1"},
		Token:    token,
	})
}

// launch runs an agent made from o (transitions recorded, retries fast)
// until the test ends.
func launch(t *testing.T, o Options) *run {
	t.Helper()
	r := &run{trs: make(chan Transition, 100), done: make(chan error, 1)}
	o.OnTransition = func(tr Transition) { r.trs <- tr }
	o.RetryDelay = func(int) time.Duration { return 20 * time.Millisecond }
	ag, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.Agent = ag
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- ag.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *run) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // stop is idempotent
}

// waitFor reads transitions until one lands in want; it fails the test
// if the agent goes elsewhere first to a waiting state or after a minute.
func (r *run) waitFor(t *testing.T, want state.State) Transition {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case tr := <-r.trs:
			if tr.To == want {
				return tr
			}
		case <-timeout:
			t.Fatalf("state %s never reached; now %s (%s)", want, r.State(), r.Status().Reason)
		}
	}
}

func (r *run) submit(t *testing.T, tok string) error {
	t.Helper()
	return r.SubmitToken(context.Background(), tok)
}

func newToken(t *testing.T, cp *lab.TestServer) string {
	t.Helper()
	tok, err := cp.Authority.CreateToken("dc1", 0)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.FormatToken(tok)
}

func TestTransitionTable(t *testing.T) {
	for from := state.AwaitingToken; from <= state.Draining; from++ {
		if !CanTransition(from, from) {
			t.Errorf("%s → itself refused", from)
		}
		if from != state.Draining && !CanTransition(from, state.Draining) {
			t.Errorf("%s → draining refused", from)
		}
	}
	for _, bad := range [][2]state.State{{state.AwaitingToken, state.Online}, {state.NeedsRecovery, state.Online}, {state.Draining, state.Online}, {state.Online, state.Enrolling}, {state.Online, state.AwaitingToken}} {
		if CanTransition(bad[0], bad[1]) {
			t.Errorf("%s → %s allowed", bad[0], bad[1])
		}
	}
	if got := state.NeedsRecovery.String(); got != "needs_recovery" || state.NeedsRecovery.Label() != "Needs recovery" {
		t.Errorf("NeedsRecovery = %q / %q", got, state.NeedsRecovery.Label())
	}
}

// Fresh data dir + token → identity on disk; restart → same ID, no
// re-enrolment even though the token is still in the environment.
func TestEnrolThenRestart(t *testing.T) {
	cp := lab.NewTest(t)
	dir := t.TempDir()
	tok := newToken(t, cp)

	r1 := start(t, cp, &identity.Dir{Path: dir}, durable, tok)
	r1.waitFor(t, state.Connecting)
	r1.waitFor(t, state.Connecting) // identity accepted
	r1.stop()
	wantSeq := []state.State{state.Enrolling, state.Connecting, state.Connecting, state.Draining}
	var got []state.State
	for _, tr := range r1.History() {
		got = append(got, tr.To)
	}
	if d := cmp.Diff(wantSeq, got); d != "" {
		t.Errorf("first run transitions (-want +got):\n%s", d)
	}
	id1, err := (&identity.Dir{Path: dir}).Load()
	if err != nil {
		t.Fatalf("identity after enrolment: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, identity.FileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("identity mode %v", fi.Mode().Perm())
	}

	r2 := start(t, cp, &identity.Dir{Path: dir}, durable, tok)
	r2.waitFor(t, state.Connecting)
	st := r2.Status()
	if st.ConnectorID != id1.ConnectorID || st.Mode != identity.ModeAutonomousRestart || st.CertNotAfter.IsZero() || st.ControlPlane != cp.URL() {
		t.Errorf("status after restart = %+v, want connector %s", st, id1.ConnectorID)
	}
	r2.stop()
	for _, tr := range r2.History() {
		if tr.To == state.Enrolling {
			t.Errorf("restart re-enrolled: %+v", r2.History())
		}
	}
	if n := cp.Authority.EnrolAttempts(tok); n != 1 {
		t.Errorf("token presented %d times, want 1", n)
	}
	if n := len(cp.Authority.Connectors()); n != 1 {
		t.Errorf("%d connectors registered, want 1", n)
	}
}

// Guided recovery on a real tmpfs: the restart loses the identity, the
// connector needs recovery with its config intact, the consumed token is
// not looped on, and a recovery token brings back the same connector ID.
func TestGuidedRecoveryOnTmpfs(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("mounting a tmpfs data directory needs root (and is skipped by -short, as in make unit)")
	}
	dir := t.TempDir()
	mount := func() {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
			t.Skipf("cannot mount tmpfs: %v", err)
		}
	}
	mount()
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	mode, err := identity.DetectMode(dir, nil)
	if err != nil || mode.Name != identity.ModeGuidedRecovery {
		t.Fatalf("DetectMode(tmpfs) = %+v, %v", mode, err)
	}
	cp := lab.NewTest(t)
	tok := newToken(t, cp)

	r1 := start(t, cp, &identity.Dir{Path: dir}, mode, tok)
	r1.waitFor(t, state.Connecting)
	firstID := r1.Status().ConnectorID
	r1.stop()

	// "Restart": the tmpfs is gone and comes back empty.
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	mount()
	r2 := start(t, cp, &identity.Dir{Path: dir}, mode, tok) // token still in the environment
	if tr := r2.waitFor(t, state.Enrolling); tr.From != state.NeedsRecovery {
		t.Fatalf("state after losing the identity = %s, want needs_recovery", tr.From)
	}
	tr := r2.waitFor(t, state.NeedsRecovery)
	if !strings.Contains(tr.Reason, protocol.CodeTokenUsed) || !strings.Contains(tr.Reason, "does not survive a restart") {
		t.Errorf("reason = %q, want why the identity is gone and that the token was used", tr.Reason)
	}
	st := r2.Status()
	if st.Mode != identity.ModeGuidedRecovery || st.DataDurable || st.ConnectorName != "dc1" || st.ControlPlane != cp.URL() || st.Hint == "" {
		t.Errorf("status = %+v; want guided recovery with config loaded and a hint", st)
	}
	// Handing the same token over again is refused locally.
	var le *localapi.Error
	if err := r2.submit(t, tok); !errors.As(err, &le) || le.Code != protocol.CodeTokenUsed {
		t.Errorf("SubmitToken(consumed) = %v, want token_used", err)
	}
	if n := cp.Authority.EnrolAttempts(tok); n != 2 {
		t.Errorf("token presented %d times, want 2 (first enrolment, one try after restart)", n)
	}

	rec, err := cp.Authority.CreateRecoveryToken(firstID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.submit(t, rec); err != nil {
		t.Fatalf("SubmitToken(recovery) = %v", err)
	}
	r2.waitFor(t, state.Connecting)
	if got := r2.Status().ConnectorID; got != firstID {
		t.Errorf("recovered connector ID = %s, want %s", got, firstID)
	}
}

func TestTokenProblemsKeepWaiting(t *testing.T) {
	clk := struct {
		sync.Mutex
		t time.Time
	}{t: time.Now()}
	now := func() time.Time { clk.Lock(); defer clk.Unlock(); return clk.t }
	cp := lab.NewTest(t, lab.WithNow(now))
	store := &identity.Mem{}
	r := start(t, cp, store, durable, "")
	if st := r.Status(); st.State != state.AwaitingToken.String() || st.Reason != "" || st.Hint == "" {
		t.Errorf("fresh status = %s %q %q; want awaiting_token, no reason, a hint", st.State, st.Reason, st.Hint)
	}

	// Typo: refused before any network traffic, state unchanged.
	tok := newToken(t, cp)
	typo := []byte(tok)
	if typo[0] == 'A' {
		typo[0] = 'B'
	} else {
		typo[0] = 'A'
	}
	var le *localapi.Error
	if err := r.submit(t, string(typo)); !errors.As(err, &le) || le.Code != protocol.CodeTokenTypo || le.Hint == "" {
		t.Fatalf("SubmitToken(typo) = %v, want token_typo with a hint", err)
	}
	if err := r.submit(t, "ABC"); !errors.As(err, &le) || le.Code != "token_invalid" {
		t.Fatalf("SubmitToken(short) = %v, want token_invalid", err)
	}
	if r.State() != state.AwaitingToken || cp.Authority.EnrolAttempts(tok) != 0 {
		t.Fatalf("typo changed state to %s or reached the control plane", r.State())
	}

	// Unknown, expired, used: each a distinct reason; still waiting.
	unknown, _ := protocol.NewToken(nil)
	expired := newToken(t, cp)
	clk.Lock()
	clk.t = clk.t.Add(2 * time.Hour)
	clk.Unlock()
	for _, tc := range []struct{ tok, code string }{{unknown, protocol.CodeTokenUnknown}, {expired, protocol.CodeTokenExpired}} {
		n := len(r.History())
		if err := r.submit(t, tc.tok); err != nil {
			t.Fatalf("SubmitToken = %v", err)
		}
		// The console polls right after the 202: state.Enrolling must already
		// be visible, never the old awaiting_token.
		if h := r.History(); len(h) <= n || h[n].To != state.Enrolling {
			t.Fatalf("SubmitToken returned before the state became enrolling: %+v", h[n:])
		}
		r.waitFor(t, state.Enrolling)
		tr := r.waitFor(t, state.AwaitingToken)
		if !strings.Contains(tr.Reason, tc.code) || r.Status().Hint == "" {
			t.Errorf("reason %q / hint %q; want %s and a hint", tr.Reason, r.Status().Hint, tc.code)
		}
	}
	if store.Saves() != 0 {
		t.Error("identity written after refused tokens")
	}
}

// A revoked certificate leads to needs_recovery with cert_revoked; a
// recovery token restores the same ID.
func TestRevokedCertificate(t *testing.T) {
	cp := lab.NewTest(t)
	store := &identity.Dir{Path: t.TempDir()}
	r1 := start(t, cp, store, durable, newToken(t, cp))
	r1.waitFor(t, state.Connecting)
	id := r1.Status().ConnectorID
	r1.stop()
	if err := cp.Authority.Revoke(id); err != nil {
		t.Fatal(err)
	}
	r2 := start(t, cp, store, durable, "")
	tr := r2.waitFor(t, state.NeedsRecovery)
	if !strings.Contains(tr.Reason, protocol.CodeCertRevoked) || r2.Status().ConnectorID != id {
		t.Errorf("reason %q, connector %q; want cert_revoked for %s", tr.Reason, r2.Status().ConnectorID, id)
	}
	rec, _ := cp.Authority.CreateRecoveryToken(id, 0)
	r2.submit(t, rec)
	r2.waitFor(t, state.Connecting)
	if got := r2.Status().ConnectorID; got != id {
		t.Errorf("recovered as %s, want %s", got, id)
	}
}

// Damaged identities: each gives needs_recovery with its own reason, and
// the config and the damaged file are kept. (A certificate expired by
// this machine's clock is not damage: the control plane decides, see
// TestLocallyExpiredIdentityAsksTheControlPlane.)
func TestDamagedIdentity(t *testing.T) {
	cp := lab.NewTest(t)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string, id *identity.Identity)
		reason string
	}{
		{"key mismatch", func(t *testing.T, dir string, id *identity.Identity) {
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			bad := *id
			bad.Key = other
			(&identity.Dir{Path: dir}).Save(&bad)
		}, "does not match"},
		{"corrupted file", func(t *testing.T, dir string, id *identity.Identity) {
			p := filepath.Join(dir, identity.FileName)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x20
			os.WriteFile(p, b, 0o600)
		}, "unreadable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r1 := start(t, cp, &identity.Dir{Path: dir}, durable, newToken(t, cp))
			r1.waitFor(t, state.Connecting)
			id := r1.Identity()
			r1.stop()
			tc.damage(t, dir, id)
			store := &identity.Dir{Path: dir}
			before, _ := os.ReadFile(filepath.Join(dir, identity.FileName))
			r2 := start(t, cp, store, durable, "")
			st := r2.Status()
			if st.State != state.NeedsRecovery.String() || !strings.Contains(st.Reason, tc.reason) || st.Hint == "" || st.ConnectorName != "dc1" {
				t.Errorf("status = %s %q (hint %q); want needs_recovery, reason containing %q", st.State, st.Reason, st.Hint, tc.reason)
			}
			r2.stop()
			after, _ := os.ReadFile(filepath.Join(dir, identity.FileName))
			if string(before) != string(after) {
				t.Error("the damaged identity file was changed without a recovery")
			}
		})
	}
}

func TestSubmitWhenNotWaiting(t *testing.T) {
	cp := lab.NewTest(t)
	r := start(t, cp, &identity.Mem{}, durable, newToken(t, cp))
	r.waitFor(t, state.Connecting)
	r.cancel()
	r.waitFor(t, state.Draining)
	var le *localapi.Error
	if err := r.submit(t, newToken(t, cp)); !errors.As(err, &le) || le.Code != "not_waiting_for_token" {
		t.Errorf("SubmitToken while draining = %v, want not_waiting_for_token", err)
	}
}

// The watchdog pings while the agent answers and stops with its context.
func TestWatchdogPings(t *testing.T) {
	pings := make(chan string, 10)
	a, err := New(Options{Store: &identity.Mem{}, Mode: durable, Enroller: &enrol.Client{},
		Notify: func(s string) {
			select {
			case pings <- s:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Watchdog(ctx, 20*time.Millisecond); close(done) }()
	for i := 0; i < 2; i++ {
		if p := <-pings; p != "WATCHDOG=1" {
			t.Fatalf("notify = %q, want WATCHDOG=1", p)
		}
	}
	// A stuck agent (its lock held) gets no pings.
	a.mu.Lock()
	for len(pings) > 0 {
		<-pings
	}
	select {
	case p := <-pings:
		a.mu.Unlock()
		t.Fatalf("pinged %q while the agent was stuck", p)
	case <-time.After(100 * time.Millisecond):
	}
	a.mu.Unlock()
	cancel()
	<-done
}

// The control plane is down when the token arrives: the connector keeps
// the token, retries with backoff (saying why), and enrols once the
// control plane is back on the same address.
func TestEnrolRetriesUntilControlPlaneIsBack(t *testing.T) {
	dir := t.TempDir()
	cp := lab.NewTestAt(t, dir)
	tok := newToken(t, cp)
	addr, pool := cp.Addr().String(), cp.CAPool
	url := cp.URL()
	cp.Stop()

	r := launch(t, Options{
		Config: config.Config{ControlPlaneURL: url, ConnectorName: "dc1"}, Store: &identity.Mem{}, Mode: durable,
		Enroller: &enrol.Client{URL: url, RootCAs: pool}, Token: tok,
	})
	for {
		tr := r.waitFor(t, state.Enrolling)
		if strings.Contains(tr.Reason, "not reachable") {
			break
		}
	}
	lab.NewTestAt(t, dir, lab.WithListen(addr))
	r.waitFor(t, state.Connecting)
	if r.Status().ConnectorID == "" {
		t.Error("no connector ID after the retried enrolment")
	}
}
