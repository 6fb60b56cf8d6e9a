package tunnel

import (
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// The histogram puts a round trip in the first bucket that holds it
// (cumulative counts, as Prometheus reads them), and the reconnects are
// the connects after the first.
func TestCounters(t *testing.T) {
	var c Counters
	for _, d := range []time.Duration{500 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 7 * time.Second} {
		c.observeRTT(d)
	}
	c.sessionEnded(protocol.ReasonTargetClosed)
	c.sessionEnded(protocol.ReasonTargetClosed)
	c.sessionEnded(protocol.ReasonNotAllowed)
	s := c.Snapshot()
	if s.Reconnects() != 0 {
		t.Errorf("Reconnects before any connect = %d", s.Reconnects())
	}
	c.tunnelsUp.Add(3)
	if got := c.Snapshot().Reconnects(); got != 2 {
		t.Errorf("Reconnects after 3 connects = %d, want 2", got)
	}
	// Buckets: 1ms, 2.5ms, 5ms, … 5s; 7s only in +Inf.
	want := map[int]uint64{0: 2, 1: 2, 2: 3, len(RTTBuckets) - 1: 3}
	for i, w := range want {
		if s.RTTCumulative[i] != w {
			t.Errorf("bucket ≤%vs = %d, want %d", RTTBuckets[i], s.RTTCumulative[i], w)
		}
	}
	if s.RTTCount != 4 || s.RTTSum != 7*time.Second+4500*time.Microsecond {
		t.Errorf("count %d, sum %v", s.RTTCount, s.RTTSum)
	}
	if s.SessionsTotal != 3 || s.Sessions["target_closed"] != 2 || s.Sessions["not_allowed"] != 1 {
		t.Errorf("sessions %v total %d", s.Sessions, s.SessionsTotal)
	}
}
