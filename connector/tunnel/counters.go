package tunnel

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// Counters are the tunnel's cumulative counters: what the metrics endpoint
// and the status JSON show (connector/metrics). One Counters is meant to
// be shared by every Client of a process (Config.Counters), so the totals
// survive reconnects and re-enrolments. The zero value is ready; it is
// safe for concurrent use.
type Counters struct {
	tunnelsUp       atomic.Uint64
	connectFailures atomic.Uint64
	hbSent          atomic.Uint64
	hbMissed        atomic.Uint64
	bytesUp         atomic.Int64 // control plane → target
	bytesDown       atomic.Int64 // target → control plane

	mu       sync.Mutex
	sessions map[protocol.Reason]uint64
	rtt      [len(RTTBuckets) + 1]uint64 // per bucket, not cumulative; the last is +Inf
	rttSum   time.Duration
	rttN     uint64
}

// RTTBuckets are the upper bounds, in seconds, of the heartbeat round-trip
// histogram: from a LAN's milliseconds to a satellite link's seconds.
var RTTBuckets = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// CounterSnapshot is a copy of Counters at one instant.
type CounterSnapshot struct {
	// TunnelsUp counts tunnels established (hello answered); the first
	// one is the connect, every later one a reconnect.
	TunnelsUp uint64
	// ConnectFailures counts connection attempts that did not bring the
	// tunnel up (dial, TLS, hello refused).
	ConnectFailures uint64
	// HeartbeatsSent counts heartbeats sent; HeartbeatsMissed those that
	// had no answer within one heartbeat interval.
	HeartbeatsSent, HeartbeatsMissed uint64
	// BytesUp and BytesDown are session bytes relayed, counted as they
	// move: towards the targets and back.
	BytesUp, BytesDown int64
	// Sessions counts ended sessions by end reason (protocol.Reason),
	// refusals included; SessionsTotal is their sum.
	Sessions      map[string]uint64
	SessionsTotal uint64
	// RTT is the heartbeat round-trip histogram: cumulative counts per
	// RTTBuckets bound (same order), the sum and the count.
	RTTCumulative []uint64
	RTTSum        time.Duration
	RTTCount      uint64
}

// Reconnects is TunnelsUp minus the first connect.
func (s CounterSnapshot) Reconnects() uint64 {
	if s.TunnelsUp == 0 {
		return 0
	}
	return s.TunnelsUp - 1
}

// Snapshot returns the counters now.
func (c *Counters) Snapshot() CounterSnapshot {
	s := CounterSnapshot{
		TunnelsUp: c.tunnelsUp.Load(), ConnectFailures: c.connectFailures.Load(),
		HeartbeatsSent: c.hbSent.Load(), HeartbeatsMissed: c.hbMissed.Load(),
		BytesUp: c.bytesUp.Load(), BytesDown: c.bytesDown.Load(),
		Sessions: map[string]uint64{},
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for r, n := range c.sessions {
		s.Sessions[string(r)] = n
		s.SessionsTotal += n
	}
	var cum uint64
	for i := range RTTBuckets {
		cum += c.rtt[i]
		s.RTTCumulative = append(s.RTTCumulative, cum)
	}
	s.RTTSum, s.RTTCount = c.rttSum, c.rttN
	return s
}

func (c *Counters) sessionEnded(r protocol.Reason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions == nil {
		c.sessions = map[protocol.Reason]uint64{}
	}
	c.sessions[r]++
}

func (c *Counters) observeRTT(d time.Duration) {
	s := d.Seconds()
	i := len(RTTBuckets)
	for j, ub := range RTTBuckets {
		if s <= ub {
			i = j
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rtt[i]++
	c.rttSum += d
	c.rttN++
}
