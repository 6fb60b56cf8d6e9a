package reboot

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
)

// connector serves the local API with a drain call that ends sessions
// after a few status reads.
type connector struct {
	mu       sync.Mutex
	sessions int
	drain    *localapi.DrainRequest
	reads    int
}

func (c *connector) Status() localapi.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	if c.drain != nil && c.reads > 3 {
		c.sessions = 0
	}
	return localapi.Status{State: "online", ActiveSessions: c.sessions}
}
func (c *connector) SubmitToken(context.Context, string) error { return nil }

func serve(t *testing.T, c *connector, withDrain bool) string {
	sock := filepath.Join(t.TempDir(), "c.sock")
	l, err := localapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", localapi.Handler(c))
	if withDrain {
		mux.HandleFunc("POST /v1/drain", func(w http.ResponseWriter, r *http.Request) {
			var d localapi.DrainRequest
			json.NewDecoder(r.Body).Decode(&d)
			c.mu.Lock()
			c.drain = &d
			c.mu.Unlock()
			// The connector answers when the drain is over.
			for c.Status().ActiveSessions > 0 {
				time.Sleep(time.Millisecond)
			}
			w.WriteHeader(http.StatusOK)
		})
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestDrainWaitsForSessions(t *testing.T) {
	c := &connector{sessions: 2}
	d := &Drainer{Socket: serve(t, c, true), Grace: 60 * time.Second, Poll: 5 * time.Millisecond, Logf: t.Logf}
	d.Drain(context.Background())
	if c.drain == nil || c.drain.Reason != "update_reboot" || time.Duration(c.drain.Grace) != time.Minute {
		t.Errorf("drain request = %+v", c.drain)
	}
	if c.sessions != 0 {
		t.Errorf("Drain returned with %d sessions", c.sessions)
	}
}

func TestDrainWithoutTheCallWaitsAtMostTheGrace(t *testing.T) {
	c := &connector{sessions: 1}
	d := &Drainer{Socket: serve(t, c, false), Grace: 50 * time.Millisecond, Poll: 5 * time.Millisecond, Logf: t.Logf}
	d.Drain(context.Background()) // returns: the grace passes
	if c.drain != nil {
		t.Error("drain recorded without the call")
	}
}

func TestDrainWithoutConnector(t *testing.T) {
	d := &Drainer{Socket: filepath.Join(t.TempDir(), "none.sock"), Grace: time.Hour, Logf: t.Logf}
	d.Drain(context.Background()) // returns at once: nothing to wait for
}
