package tunnel_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// TestDrain: Shutdown stops new sessions at once, lets the session in
// flight finish within the grace period, then Run returns.
func TestDrain(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{})
	h.WaitOnline()
	s, err := h.Broker.Dial(context.Background(), "c1", h.Echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- h.Client.Shutdown(context.Background()) }()
	h.WaitStatus("c1", broker.StatusDraining)
	_, err = h.Broker.Dial(context.Background(), "c1", h.Echo.Addr)
	if !errors.Is(err, broker.ErrConnectorDraining) {
		t.Fatalf("Dial while draining = %v, want ErrConnectorDraining", err)
	}
	// The session in flight still works.
	io.WriteString(s, "still here")
	buf := make([]byte, 10)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("echo while draining = %q, %v", buf, err)
	}
	s.CloseWrite()
	io.Copy(io.Discard, s)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v, want nil (session finished in time)", err)
	}
	if err := <-h.RunErr; !errors.Is(err, tunnel.ErrClientClosed) {
		t.Fatalf("Run = %v, want ErrClientClosed", err)
	}
	h.RunErr <- nil // for cleanup
	h.WaitStatus("c1", broker.StatusOffline)
}

// TestDrainGraceExpires: a session that does not finish within the grace
// period is ended with reason draining.
func TestDrainGraceExpires(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{})
	h.WaitOnline()
	s, err := h.Broker.Dial(context.Background(), "c1", h.Echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	shut := make(chan error, 1)
	go func() { shut <- h.Client.Shutdown(ctx) }()
	h.WaitStatus("c1", broker.StatusDraining)
	cancel() // grace period over
	if err := <-shut; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	<-s.Done()
	brokertest.WaitFor(t, "connector's draining report", func() bool {
		for _, e := range h.EndsFor(s.ID) {
			if e.By == "connector" && e.Reason == string(protocol.ReasonDraining) {
				return true
			}
		}
		return false
	})
	<-h.RunErr
	h.RunErr <- nil
}

// TestDrainCompletedSessionKeepsReason: during a drain the connector
// closes the tunnel as soon as its last session ends. A session that
// ended normally before that (the connector relayed everything, reported
// the end, then closed the tunnel) keeps its reason even when the caller
// reads the end only after the tunnel is gone; connector_offline is only
// for sessions the tunnel loss cut. The caller's late read makes the race
// deterministic.
func TestDrainCompletedSessionKeepsReason(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{})
	h.WaitOnline()
	s, err := h.Broker.Dial(context.Background(), "c1", h.Echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- h.Client.Shutdown(context.Background()) }()
	h.WaitStatus("c1", broker.StatusDraining)

	const msg = "last words"
	io.WriteString(s, msg)
	s.CloseWrite()
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo while draining = %q, %v; want %q", buf, err, msg)
	}
	// Leave the end unread: the connector finishes the session, reports
	// it and, with no session left, closes the tunnel.
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v, want nil (the session finished)", err)
	}
	h.WaitStatus("c1", broker.StatusOffline)

	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the drained tunnel closed = %d, %v; want io.EOF (the session ended normally)", n, err)
	}
	<-s.Done()
	if r, d := s.Reason(); r != protocol.ReasonClientClosed {
		t.Errorf("Reason() = %q (%s), want %q (our CloseWrite came first)", r, d, protocol.ReasonClientClosed)
	}
	for _, e := range h.EndsFor(s.ID) {
		if e.Reason != string(protocol.ReasonClientClosed) {
			t.Errorf("session end %+v, want reason client_closed", e)
		}
	}
	if err := <-h.RunErr; !errors.Is(err, tunnel.ErrClientClosed) {
		t.Fatalf("Run = %v, want ErrClientClosed", err)
	}
	h.RunErr <- nil // for cleanup
}

// TestRTTRightAfterConnecting: the status has a round-trip time as soon as
// the tunnel is up, not only after the first heartbeat answer (here an
// hour away).
func TestRTTRightAfterConnecting(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{Interval: time.Hour})
	h.WaitOnline()
	brokertest.WaitFor(t, "an RTT before the first heartbeat", func() bool { return h.Client.Status().RTT > 0 })
	if s := h.Client.Status(); !s.LastHeartbeat.IsZero() && s.LastHeartbeat.After(s.LastSuccess) {
		t.Errorf("a heartbeat was answered (%v) although the interval is an hour", s.LastHeartbeat)
	}
}
