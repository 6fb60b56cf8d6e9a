package lab

import (
	"sync"
	"time"
)

// failLimiter counts failed guesses (wrong user codes on the approval
// page, wrong administrator passwords) per client address and in all,
// over a sliding window. A client with PerClient failures in the window,
// or everybody once there were Global failures, is refused until the
// oldest of them leaves the window. Safe for concurrent use.
type failLimiter struct {
	Window    time.Duration
	PerClient int
	Global    int
	Now       func() time.Time

	mu       sync.Mutex
	byClient map[string][]time.Time
	all      []time.Time
}

// Default approval-page limits: 5 failures per client address in 10
// minutes, 50 from everybody.
const (
	pageFailWindow    = 10 * time.Minute
	pageFailPerClient = 5
	pageFailGlobal    = 50
)

func newFailLimiter(now func() time.Time) *failLimiter {
	return &failLimiter{Window: pageFailWindow, PerClient: pageFailPerClient, Global: pageFailGlobal, Now: now, byClient: map[string][]time.Time{}}
}

// Check reports whether client may try now; if not, how long until it
// may, and whether the global cap (not this client) is the cause.
func (l *failLimiter) Check(client string) (ok bool, retryAfter time.Duration, global bool) {
	now := l.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
	if f := l.byClient[client]; len(f) >= l.PerClient {
		return false, f[len(f)-l.PerClient].Add(l.Window).Sub(now), false
	}
	if len(l.all) >= l.Global {
		return false, l.all[len(l.all)-l.Global].Add(l.Window).Sub(now), true
	}
	return true, 0, false
}

// Fail records a failed guess by client.
func (l *failLimiter) Fail(client string) {
	now := l.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byClient[client] = append(l.byClient[client], now)
	l.all = append(l.all, now)
}

func (l *failLimiter) pruneLocked(now time.Time) {
	keep := func(ts []time.Time) []time.Time {
		i := 0
		for i < len(ts) && !ts[i].Add(l.Window).After(now) {
			i++
		}
		return ts[i:]
	}
	l.all = keep(l.all)
	for c, ts := range l.byClient {
		if ts = keep(ts); len(ts) == 0 {
			delete(l.byClient, c)
		} else {
			l.byClient[c] = ts
		}
	}
}
