package gate

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/internal/updatetest"
	"github.com/vaultpam/appliance/update/reconcile"
	"github.com/vaultpam/appliance/update/state"
)

// fakeConnector serves the real local API on a Unix socket with a status
// the test scripts: the i-th read gets script[min(i, len-1)].
type fakeConnector struct {
	mu     sync.Mutex
	script []localapi.Status
	reads  int
}

func (f *fakeConnector) Status() localapi.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.script[min(f.reads, len(f.script)-1)]
	f.reads++
	if s.State == "online" && s.LastHeartbeat.IsZero() {
		s.LastHeartbeat = time.Now() // heartbeating, unless the script says when
	}
	return s
}

func (f *fakeConnector) SubmitToken(context.Context, string) error { return nil }

func serve(t *testing.T, f *fakeConnector) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "connector.sock")
	l, err := localapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: localapi.Handler(f)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func newGate(t *testing.T, sock string, pending *state.Pending) (*Gate, *state.Store, *bool) {
	store, err := state.Open(filepath.Join(t.TempDir(), "update"))
	if err != nil {
		t.Fatal(err)
	}
	if pending != nil {
		store.SetPending(pending)
	}
	marked := new(bool)
	c := localapi.NewClient(sock)
	return &Gate{Status: c.Status, Store: store, Deadline: 2 * time.Second, Poll: 10 * time.Millisecond, Steady: 50 * time.Millisecond,
		Slot: "B", Version: "0.2.0", Entry: "vaultpam-0.2.0-B+2-1.efi",
		MarkBad: func(context.Context) error { *marked = true; return nil }, Logf: t.Logf}, store, marked
}

func pending() *state.Pending {
	return &state.Pending{Kind: state.KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageTrial, ConnectorID: "c-1"}
}

func TestPassesWhenOnlineWithTheSameID(t *testing.T) {
	f := &fakeConnector{script: []localapi.Status{
		{State: "connecting"}, {State: "reconnecting", ConnectorID: "c-1", Reason: "dial: connection refused"},
		{State: "online", ConnectorID: "c-1"},
	}}
	g, store, marked := newGate(t, serve(t, f), pending())
	v, err := g.Run(context.Background())
	if err != nil || !v.OK || v.Bad || *marked {
		t.Fatalf("Run = %+v, %v; want ok", v, err)
	}
	p, _ := store.Pending()
	if a := store.LastAttempt(p); a == nil || !a.OK || a.Entry != "vaultpam-0.2.0-B+2-1.efi" || !strings.Contains(a.Reason, "Online with ID c-1") {
		t.Errorf("attempt = %+v", a)
	}
	if f.reads < 3 {
		t.Errorf("passed after %d reads, before the connector was Online", f.reads)
	}
}

func TestNeverOnlineFailsWithoutMarkingBad(t *testing.T) {
	f := &fakeConnector{script: []localapi.Status{{State: "reconnecting", ConnectorID: "c-1", Reason: "test build vaultpam_fault_neveronline: never goes online"}}}
	g, store, marked := newGate(t, serve(t, f), pending())
	g.Deadline = 200 * time.Millisecond
	v, err := g.Run(context.Background())
	if err != nil || v.OK || v.Bad || *marked {
		t.Fatalf("Run = %+v, %v; want a plain failure", v, err)
	}
	want := "connector not Online after 200ms: last state reconnecting: test build vaultpam_fault_neveronline: never goes online"
	if v.Reason != want {
		t.Errorf("reason = %q, want %q", v.Reason, want)
	}
	p, _ := store.Pending()
	if a := store.LastAttempt(p); a == nil || a.OK || a.Reason != want || a.State != "reconnecting" {
		t.Errorf("attempt = %+v", a)
	}
}

func TestDeterministicFailuresMarkBad(t *testing.T) {
	for name, st := range map[string]localapi.Status{
		"other ID":       {State: "online", ConnectorID: "c-2"},
		"needs recovery": {State: "needs_recovery", ConnectorID: "c-1", Reason: "key and certificate do not match"},
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakeConnector{script: []localapi.Status{{State: "connecting"}, st}}
			g, _, marked := newGate(t, serve(t, f), pending())
			v, err := g.Run(context.Background())
			if err != nil || v.OK || !v.Bad || !*marked {
				t.Fatalf("Run = %+v, %v, marked %v; want bad and marked", v, err, *marked)
			}
			t.Logf("reason: %s", v.Reason)
		})
	}
}

func TestConnectorNotRunning(t *testing.T) {
	g, _, _ := newGate(t, filepath.Join(t.TempDir(), "nobody.sock"), pending())
	g.Deadline = 100 * time.Millisecond
	v, _ := g.Run(context.Background())
	if v.OK || !strings.Contains(v.Reason, "connector not reachable") {
		t.Errorf("Run = %+v", v)
	}
}

// TestWithoutRecordFails: no pending record on a trial boot (the record
// unreadable or removed) means the expected connector ID is unknown: the
// gate fails (without marking the entry bad) instead of accepting any ID.
// Before the fix any connector ID passed.
func TestWithoutRecordFails(t *testing.T) {
	f := &fakeConnector{script: []localapi.Status{{State: "online", ConnectorID: "someone-else"}}}
	g, _, marked := newGate(t, serve(t, f), nil)
	v, err := g.Run(context.Background())
	if err != nil || v.OK || v.Bad || *marked || !strings.Contains(v.Reason, "no update record") {
		t.Fatalf("Run without a record = %+v, %v; want a plain failure", v, err)
	}
}

// TestOneOnlineReadingIsNotEnough: a connector that goes Online once and
// then falls over (needs_recovery after its first renewal, a crash loop)
// is not kept: the gate passes only after Online lasted Steady with a
// heartbeat inside it. Before the fix the first Online reading passed.
func TestOneOnlineReadingIsNotEnough(t *testing.T) {
	f := &fakeConnector{script: []localapi.Status{
		{State: "online", ConnectorID: "c-1"},
		{State: "needs_recovery", ConnectorID: "c-1", Reason: "identity unusable"},
	}}
	g, _, marked := newGate(t, serve(t, f), pending())
	g.Steady = time.Hour // longer than the deadline: capped at a third of it
	v, err := g.Run(context.Background())
	if err != nil || v.OK || !v.Bad || !*marked {
		t.Fatalf("Run = %+v, %v after %d reads; want bad (needs recovery)", v, err, f.reads)
	}
}

// TestStaleHeartbeatDoesNotPass: Online with the right ID but no
// heartbeat since the gate started (a status left from before) never
// passes.
func TestStaleHeartbeatDoesNotPass(t *testing.T) {
	f := &fakeConnector{script: []localapi.Status{{State: "online", ConnectorID: "c-1", LastHeartbeat: time.Now().Add(-time.Hour)}}}
	g, _, _ := newGate(t, serve(t, f), pending())
	g.Deadline = 300 * time.Millisecond
	v, err := g.Run(context.Background())
	if err != nil || v.OK {
		t.Fatalf("Run = %+v, %v; want a failure", v, err)
	}
	t.Logf("reason: %s", v.Reason)
}

// TestPassedDowngradeAndRollbackStick: when a downgrade's or a manual
// rollback's trial passes, the gate retires the entries of the slot the
// change left (the newer image) at once. A restart right after
// systemd-bless-boot (before the updater's next look) then boots the
// target again, and reconcile reports success. Before the fix only the
// daemon retired them, on its next tick: the restart booted the newer
// image by version order and the blessed change was reported rolled back
// (its version put into failed.json).
func TestPassedDowngradeAndRollbackStick(t *testing.T) {
	for _, kind := range []state.Kind{state.KindDowngrade, state.KindRollback} {
		t.Run(string(kind), func(t *testing.T) {
			espDir := t.TempDir()
			os.WriteFile(filepath.Join(espDir, "vaultpam-0.3.0-A.efi"), []byte("newer"), 0o644)
			os.WriteFile(filepath.Join(espDir, "vaultpam-0.2.0-B+2-1.efi"), []byte("older, on trial"), 0o644)
			f := &fakeConnector{script: []localapi.Status{{State: "online", ConnectorID: "c1"}}}
			g, store, _ := newGate(t, serve(t, f), &state.Pending{Kind: kind, Version: "0.2.0", Slot: "B", FromVersion: "0.3.0", FromSlot: "A",
				Stage: state.StageTrial, ConnectorID: "c1", Started: time.Now().Add(-time.Minute)})
			g.ESP = &esp.Dir{Path: espDir}
			v, err := g.Run(context.Background())
			if err != nil || !v.OK {
				t.Fatalf("gate = %+v, %v", v, err)
			}
			e, _ := g.ESP.Find("vaultpam-0.2.0-B+2-1.efi")
			updatetest.Bless(t, espDir, e) // systemd-bless-boot good; then a power cut
			vars := esp.Vars{Dir: t.TempDir()}
			booted := updatetest.Boot(t, espDir, vars)
			if booted.Slot != "B" {
				t.Fatalf("the restart after the blessed %s booted %s", kind, booted.Name)
			}
			r := &reconcile.Reconciler{Store: store, ESP: g.ESP, Vars: vars, Running: "B", RunningVersion: "0.2.0", Logf: t.Logf}
			res, err := r.Run()
			if err != nil || res.Outcome != reconcile.Succeeded {
				t.Errorf("reconcile = %s, %v; want succeeded", res.Outcome, err)
			}
			if fv, _ := store.FailedVersion("0.2.0"); fv != nil {
				t.Errorf("0.2.0 in failed.json: %+v", fv)
			}
		})
	}
}

// TestPassedUpdateRetiresNothing: an update's pass leaves the old slot's
// entry (the rollback target) alone.
func TestPassedUpdateRetiresNothing(t *testing.T) {
	espDir := t.TempDir()
	os.WriteFile(filepath.Join(espDir, "vaultpam-0.1.0-A.efi"), nil, 0o644)
	os.WriteFile(filepath.Join(espDir, "vaultpam-0.2.0-B+2-1.efi"), nil, 0o644)
	f := &fakeConnector{script: []localapi.Status{{State: "online", ConnectorID: "c1"}}}
	g, _, _ := newGate(t, serve(t, f), &state.Pending{Kind: state.KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageTrial, ConnectorID: "c1"})
	g.ESP = &esp.Dir{Path: espDir}
	if v, err := g.Run(context.Background()); err != nil || !v.OK {
		t.Fatalf("gate = %+v, %v", v, err)
	}
	if _, err := os.Stat(filepath.Join(espDir, "vaultpam-0.1.0-A.efi")); err != nil {
		t.Errorf("the old slot's entry is gone after an update passed: %v", err)
	}
}
