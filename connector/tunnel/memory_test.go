package tunnel_test

import (
	"context"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// burstTarget is a TCP target that, per connection, reads n bytes, answers
// n bytes, then idles until EOF. It holds almost nothing per connection
// (the harness's echo holds a 64 KiB buffer each), so the heap measured
// is the tunnel's.
func burstTarget(t testing.TB, n int, payload []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				defer c.Close()
				var b [512]byte
				for got := 0; got < n; {
					k, err := c.Read(b[:])
					if err != nil {
						return
					}
					got += k
				}
				if _, err := c.Write(payload[:n]); err != nil {
					return
				}
				for {
					if _, err := c.Read(b[:1]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// idleAfterBurst opens sessions through the harness, moves burst bytes each
// way through every one, lets them all idle for a few heartbeats, and
// returns the heap in use then (after GC), with the sessions still open.
func idleAfterBurst(t testing.TB, sessions, burst int) (heapAlloc, heapInuse uint64) {
	// Slow enough that bursts on a loaded machine (or under -race) never
	// miss three heartbeats in a row.
	const interval = time.Second
	h := brokertest.NewHarness(t, brokertest.Options{Interval: interval})
	h.WaitOnline()
	payload := make([]byte, burst)
	target := burstTarget(t, burst, payload)
	ss := make([]*broker.Session, sessions)
	for i := range ss {
		s, err := h.Broker.Dial(context.Background(), "c1", target)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		ss[i] = s
	}
	t.Cleanup(func() {
		for _, s := range ss {
			s.Close()
		}
	})
	work := make(chan *broker.Session)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for s := range work {
				if _, err := s.Write(payload); err != nil {
					t.Errorf("writing the burst: %v", err)
					continue
				}
				for got := 0; got < burst; {
					n, err := s.Read(buf[:min(len(buf), burst-got)])
					if err != nil {
						t.Errorf("reading the burst: %v", err)
						break
					}
					got += n
				}
			}
		}()
	}
	for _, s := range ss {
		work <- s
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Idle: wait until the connector has had three heartbeats answered
	// after the last byte moved (its idle sweep runs at every heartbeat,
	// the broker's at every heartbeat it receives).
	quiet := time.Now()
	brokertest.WaitFor(t, "three heartbeats after the bursts", func() bool {
		return h.Client.Status().LastHeartbeat.After(quiet.Add(3 * interval))
	})
	if n := h.Client.Status().ActiveSessions; n != sessions {
		t.Fatalf("%d sessions open on the connector, want %d", n, sessions)
	}
	runtime.GC()
	runtime.GC() // a second cycle empties the pools' victim caches
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.HeapInuse
}

// TestIdleSessionsGiveMemoryBack: 500 sessions that each moved a 300 KiB
// burst and then went idle hold their small buffers only; the relay's
// large buffers and the streams' receive buffers went back. The heap of
// the whole test process (connector, broker, targets) stays under 40 MiB,
// as the README's ~21 KiB per idle session says.
func TestIdleSessionsGiveMemoryBack(t *testing.T) {
	const sessions, burst, limit = 500, 300 << 10, 40 << 20
	alloc, inuse := idleAfterBurst(t, sessions, burst)
	t.Logf("%d idle sessions after a %d KiB burst each: heap alloc %.1f MiB, in use %.1f MiB (%.1f KiB per session)",
		sessions, burst>>10, float64(alloc)/(1<<20), float64(inuse)/(1<<20), float64(inuse)/1024/sessions)
	if inuse > limit {
		t.Errorf("heap in use %.1f MiB with %d idle sessions, want under %d MiB", float64(inuse)/(1<<20), sessions, limit>>20)
	}
}

// BenchmarkIdleSessionHeap reports the heap per idle session after a
// 300 KiB burst (connector and broker in one process).
func BenchmarkIdleSessionHeap(b *testing.B) {
	const sessions, burst = 500, 300 << 10
	for range b.N {
		_, inuse := idleAfterBurst(b, sessions, burst)
		b.ReportMetric(float64(inuse)/sessions, "heap-B/session")
		b.ReportMetric(float64(inuse)/(1<<20), "heap-MiB")
	}
}
