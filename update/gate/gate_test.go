package gate

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
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
	return &Gate{Status: c.Status, Store: store, Deadline: 2 * time.Second, Poll: 10 * time.Millisecond,
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

func TestWithoutRecordAnyIDPasses(t *testing.T) {
	f := &fakeConnector{script: []localapi.Status{{State: "online", ConnectorID: "c-9"}}}
	g, _, _ := newGate(t, serve(t, f), nil)
	if v, err := g.Run(context.Background()); err != nil || !v.OK {
		t.Fatalf("Run = %+v, %v", v, err)
	}
}
