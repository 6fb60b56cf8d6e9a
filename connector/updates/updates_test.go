package updates

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
)

// fakeUpdater records install requests and answers with a fixed status.
type fakeUpdater struct {
	mu       sync.Mutex
	installs []localapi.InstallRequest
	handed   chan struct{}
	image    localapi.Image
}

func (f *fakeUpdater) Status(context.Context) (localapi.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.image, nil
}

func (f *fakeUpdater) Install(_ context.Context, r localapi.InstallRequest) error {
	f.mu.Lock()
	f.installs = append(f.installs, r)
	f.mu.Unlock()
	f.handed <- struct{}{}
	return nil
}

func (f *fakeUpdater) Rollback(context.Context, localapi.RollbackRequest) error { return nil }

func (f *fakeUpdater) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.installs)
}

// offerServer serves every file of an offer over real TLS and counts the
// requests.
type offerServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits int
}

func newOfferServer(t *testing.T) *offerServer {
	s := &offerServer{}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits++
		s.mu.Unlock()
		w.Write([]byte("0123456789"))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *offerServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

func testOffer(id string) protocol.UpdateOffer {
	file := func(name string) protocol.UpdateFile {
		return protocol.UpdateFile{Name: name, Path: "/v1/update/" + id + "/" + name, Length: 10}
	}
	return protocol.UpdateOffer{ID: id, Version: "0.2.0", Target: "vaultpam-connector-0.2.0.update",
		Bundle: file("vaultpam-connector-0.2.0.update"), Metadata: []protocol.UpdateFile{file("1.root.json"), file("timestamp.json")}}
}

func newTestManager(t *testing.T, dir string, srv *offerServer, up *fakeUpdater) *Manager {
	t.Helper()
	m, err := New(Options{Dir: dir, BaseURL: srv.URL, Updater: up,
		HTTPClient: func() (*http.Client, error) { return srv.Client(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitHanded waits for m to hand an offer to up and to finish with it.
func waitHanded(t *testing.T, m *Manager, up *fakeUpdater) {
	t.Helper()
	select {
	case <-up.handed:
	case <-time.After(time.Minute):
		t.Fatal("the offer was never handed to the updater")
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		m.mu.Lock()
		done := m.active == ""
		m.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the hand-over never finished")
		}
	}
}

// TestOfferHandedNotTakenAgainAfterRestart: the control plane repeats its
// standing offer after every reconnect, and a reconnect follows every
// reboot. A connector that restarts (the reboot into the new slot, or a
// power cut while the updater wrote it) must not download and install an
// offer it handed to the updater before: the updater owns the outcome
// (reconcile reports it, e.g. "interrupted"). A new offer of the same
// version is taken.
func TestOfferHandedNotTakenAgainAfterRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "incoming")
	srv := newOfferServer(t)
	up := &fakeUpdater{handed: make(chan struct{}, 4),
		image: localapi.Image{Version: "0.1.0", Slot: "A", Update: &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateFailed,
			Reason: "the install of 0.2.0 was interrupted (power loss or restart) while writing slot B", At: time.Now()}}}

	o := testOffer("upd-1")
	first := newTestManager(t, dir, srv, up)
	first.Offer(o)
	waitHanded(t, first, up)
	if got := up.installs[0]; got.Dir != filepath.Join(dir, "upd-1") || got.Target != o.Target {
		t.Fatalf("install request %+v, want the download directory and target of the offer", got)
	}
	hits := srv.requests()

	// The restart: a new process, the same data directory, the offer sent
	// again at the hello.
	again := newTestManager(t, dir, srv, up)
	again.Offer(o)
	again.mu.Lock()
	active, local := again.active, again.local
	again.mu.Unlock()
	if active != "" || local != nil {
		t.Fatalf("after a restart the handed offer was taken again (active %q, local report %+v)", active, local)
	}
	again.poll(context.Background())
	if _, r := again.Report(); r == nil || r.State != localapi.UpdateFailed {
		t.Errorf("report after the restart %+v, want the updater's (failed, interrupted)", r)
	}

	// The operator offers the same version again: a new offer, taken.
	again.Offer(testOffer("upd-2"))
	waitHanded(t, again, up)
	if n := up.count(); n != 2 {
		t.Errorf("%d installs, want 2 (the first offer once, the new one once)", n)
	}
	if srv.requests() == hits {
		t.Error("the new offer was not downloaded")
	}
	// The new offer's hand-over replaces the old one's mark.
	if _, err := os.Stat(filepath.Join(dir, "upd-1.handed")); !os.IsNotExist(err) {
		t.Errorf("the first offer's mark is still there after the next offer was handed over (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "upd-2.handed")); err != nil {
		t.Errorf("the handed offer has no mark: %v", err)
	}
}
