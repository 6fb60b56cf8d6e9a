package tunnel_test

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/vaultpam/appliance/connector/backoff"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// attempts records the Attempt of every reconnecting status.
type attempts struct {
	mu sync.Mutex
	a  []int
}

func (r *attempts) record(s tunnel.Status) {
	if s.State == state.Reconnecting {
		r.mu.Lock()
		r.a = append(r.a, s.Attempt)
		r.mu.Unlock()
	}
}

func (r *attempts) get() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.a...)
}

// A control plane that accepts the tunnel and drops it at once gets
// growing delays: every drop counts as a failed attempt, since the tunnel
// never stayed up for StableAfter.
func TestBackoffEscalatesWhenDroppedAtOnce(t *testing.T) {
	f := newFakeControlPlane(t, func(*yamux.Session, *yamux.Stream) {}) // hello_ack, then close
	var rec attempts
	f.client(t, func(c *tunnel.Config) {
		c.Backoff = backoff.Backoff{Initial: 2 * time.Millisecond, Max: 500 * time.Millisecond, Factor: 2}
		c.Rand = rand.NewChaCha8([32]byte{9})
		c.OnStatus = rec.record
	})
	brokertest.WaitFor(t, "six accepted-and-dropped tunnels", func() bool { return f.Tunnels.Load() >= 6 })
	got := rec.get()
	for i, a := range got[:6] {
		if a != i+1 {
			t.Fatalf("reconnect attempts %v; want 1, 2, 3, … (the schedule escalates)", got)
		}
	}
	t.Logf("attempts %v", got)
}

// A tunnel that stayed up for StableAfter resets the schedule: the next
// drop is retried from the first, short wait.
func TestStableTunnelResetsBackoff(t *testing.T) {
	var offset atomic.Int64 // the connector's clock runs ahead by this
	release := make(chan struct{}, 16)
	f := newFakeControlPlane(t, func(*yamux.Session, *yamux.Stream) { <-release })
	var rec attempts
	f.client(t, func(c *tunnel.Config) {
		c.Backoff = backoff.Backoff{Initial: 2 * time.Millisecond, Max: 500 * time.Millisecond, Factor: 2}
		c.StableAfter = time.Hour
		c.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		c.OnStatus = rec.record
	})
	for i := 1; i <= 3; i++ { // three tunnels dropped soon: attempts 1, 2, 3
		brokertest.WaitFor(t, "a tunnel", func() bool { return f.Tunnels.Load() == int32(i) })
		release <- struct{}{}
		brokertest.WaitFor(t, "the drop", func() bool { return len(rec.get()) == i })
	}
	brokertest.WaitFor(t, "the fourth tunnel", func() bool { return f.Tunnels.Load() == 4 })
	offset.Store(int64(2 * time.Hour)) // it stays up past StableAfter
	release <- struct{}{}
	brokertest.WaitFor(t, "the drop of the stable tunnel", func() bool { return len(rec.get()) == 4 })
	if got := rec.get(); got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 1 {
		t.Errorf("reconnect attempts %v; want 1, 2, 3, then 1 after a stable tunnel", got)
	}
}
