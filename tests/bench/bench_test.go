package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"
)

const chunk = 1 << 20

var payload = make([]byte, chunk)

// sendToSink writes n chunks to the sink through p and waits for the
// sink's byte count, so the time covers delivery, not just buffering.
func sendToSink(ctx context.Context, p path, sinkAddr string, n int) error {
	c, err := p.dial(ctx, sinkAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	for range n {
		if _, err := c.Write(payload); err != nil {
			return err
		}
	}
	c.CloseWrite()
	var got [8]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return fmt.Errorf("reading sink count: %w", err)
	}
	if v := binary.BigEndian.Uint64(got[:]); v != uint64(n*chunk) {
		return fmt.Errorf("sink got %d bytes, want %d", v, n*chunk)
	}
	return nil
}

// BenchmarkRSS measures the forwarding process (the connector, or the
// ssh -R client) idle and with 1,000 open sessions. It measures once,
// whatever b.N, and comes first so bulk transfers have not grown the heap.
func BenchmarkRSS(b *testing.B) {
	e := getEnv(b)
	const sessions = 1000
	for _, p := range e.paths {
		if p.pid == 0 {
			continue
		}
		b.Run(p.name, func(b *testing.B) {
			before, err := rssKiB(p.pid)
			if err != nil {
				b.Fatal(err)
			}
			var open []conn
			buf := make([]byte, 1)
			for range sessions {
				c, err := p.dial(context.Background(), e.echo.Addr)
				if err != nil {
					b.Fatalf("opening session %d: %v", len(open)+1, err)
				}
				if err := roundTrip(c, []byte{'x'}, buf); err != nil {
					b.Fatal(err)
				}
				open = append(open, c)
			}
			time.Sleep(time.Second)
			with, err := rssKiB(p.pid)
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range open {
				c.Close()
			}
			for range b.N {
			}
			perSession := float64(with-before) / sessions
			b.ReportMetric(float64(e.idleRSS[p.name])/1024, "idle-MiB")
			b.ReportMetric(float64(with)/1024, "1000-sessions-MiB")
			b.ReportMetric(perSession, "KiB/session")
			record("rss_idle_mib", p.name, float64(e.idleRSS[p.name])/1024)
			record("rss_1000_sessions_mib", p.name, float64(with)/1024)
			record("rss_per_session_kib", p.name, perSession)
		})
	}
}

// BenchmarkThroughput moves b.N MiB to a sink target over 1 and 8
// concurrent streams.
func BenchmarkThroughput(b *testing.B) {
	e := getEnv(b)
	for _, streams := range []int{1, 8} {
		for _, p := range e.paths {
			b.Run(fmt.Sprintf("streams=%d/%s", streams, p.name), func(b *testing.B) {
				b.SetBytes(chunk)
				cpu0 := cpuTime(p.pid)
				start := time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, streams)
				for i := range streams {
					n := b.N / streams
					if i < b.N%streams {
						n++
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := sendToSink(context.Background(), p, e.sink.Addr, n); err != nil {
							errs <- err
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				cpu := cpuTime(p.pid) - cpu0
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				gbps := float64(b.N) * chunk * 8 / elapsed.Seconds() / 1e9
				b.ReportMetric(gbps, "Gbit/s")
				record(fmt.Sprintf("throughput_%d_stream_gbit_s", streams), p.name, gbps)
				cpuPerMiB := ms(cpu) / float64(b.N)
				b.ReportMetric(cpuPerMiB, "cpu-ms/MiB")
				record(fmt.Sprintf("throughput_%d_stream_cpu_ms_per_mib", streams), p.name, cpuPerMiB)
			})
		}
	}
}

// roundTrip writes msg and reads it back.
func roundTrip(c conn, msg, buf []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(c, buf[:len(msg)])
	return err
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkOpen opens a session to the echo target and does one 1-byte
// round trip (so the session is proven end to end), then closes it.
func BenchmarkOpen(b *testing.B) {
	e := getEnv(b)
	for _, p := range e.paths {
		b.Run(p.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			buf := make([]byte, 1)
			for range b.N {
				t0 := time.Now()
				c, err := p.dial(context.Background(), e.echo.Addr)
				if err != nil {
					b.Fatal(err)
				}
				if err := roundTrip(c, []byte{'x'}, buf); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				c.Close()
			}
			p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
			b.ReportMetric(ms(p50), "p50-ms")
			b.ReportMetric(ms(p99), "p99-ms")
			record("open_p50_ms", p.name, ms(p50))
			record("open_p99_ms", p.name, ms(p99))
		})
	}
}

// BenchmarkInteractiveUnderBulk measures 64-byte echo round trips on one
// session while another session of the same path pushes bulk data.
func BenchmarkInteractiveUnderBulk(b *testing.B) {
	e := getEnv(b)
	for _, p := range e.paths {
		b.Run(p.name, func(b *testing.B) {
			bulk, err := p.dial(context.Background(), e.sink.Addr)
			if err != nil {
				b.Fatal(err)
			}
			stop := make(chan struct{})
			bulkDone := make(chan struct{})
			go func() {
				defer close(bulkDone)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := bulk.Write(payload); err != nil {
						return
					}
				}
			}()
			c, err := p.dial(context.Background(), e.echo.Addr)
			if err != nil {
				b.Fatal(err)
			}
			msg, buf := make([]byte, 64), make([]byte, 64)
			time.Sleep(50 * time.Millisecond) // let the bulk stream fill its windows
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if err := roundTrip(c, msg, buf); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			close(stop)
			c.Close()
			bulk.Close()
			<-bulkDone
			p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
			b.ReportMetric(ms(p50), "p50-ms")
			b.ReportMetric(ms(p99), "p99-ms")
			record("interactive_under_bulk_p50_ms", p.name, ms(p50))
			record("interactive_under_bulk_p99_ms", p.name, ms(p99))
		})
	}
}
