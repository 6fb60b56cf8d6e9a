package broker_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// freezer hands out connections whose traffic can be blocked, like a
// connector frozen with SIGSTOP or a firewall dropping its packets.
type freezer struct {
	mu     sync.Mutex
	frozen bool
	thaw   chan struct{}
}

func newFreezer() *freezer { return &freezer{thaw: make(chan struct{})} }

func (f *freezer) freeze() {
	f.mu.Lock()
	f.frozen = true
	f.mu.Unlock()
}

func (f *freezer) unfreeze() {
	f.mu.Lock()
	if f.frozen {
		f.frozen = false
		close(f.thaw)
		f.thaw = make(chan struct{})
	}
	f.mu.Unlock()
}

func (f *freezer) wait() {
	f.mu.Lock()
	frozen, thaw := f.frozen, f.thaw
	f.mu.Unlock()
	if frozen {
		<-thaw
	}
}

func (f *freezer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &frozenConn{Conn: c, f: f}, nil
}

type frozenConn struct {
	net.Conn
	f *freezer
}

func (c *frozenConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.f.wait() // data read while frozen is delivered only after the thaw
	return n, err
}

func (c *frozenConn) Write(p []byte) (int, error) {
	c.f.wait()
	return c.Conn.Write(p)
}

// TestHeartbeatStopGoesOffline: the connector's traffic stops → Offline
// after missed heartbeats, routing refuses it, the session in flight ends
// with connector_offline; traffic resumes → Online again by itself.
func TestHeartbeatStopGoesOffline(t *testing.T) {
	f := newFreezer()
	l := newLab(t, labOpts{interval: time.Second, editCfg: func(c *tunnel.Config) { c.DialControlPlane = f.dial }})
	l.waitOnline()
	s, err := l.b.Dial(context.Background(), "c1", l.echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(s, "x")
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	f.freeze()
	frozenAt := time.Now()
	readErr := make(chan error, 1)
	go func() { _, err := s.Read(make([]byte, 1)); readErr <- err }()
	l.waitStatus("c1", broker.StatusOffline)
	t.Logf("offline %v after the freeze (heartbeat interval 1s; reported, not asserted)", time.Since(frozenAt).Round(time.Millisecond))
	err = <-readErr
	var ended *broker.SessionEndedError
	if !errors.As(err, &ended) || !errors.Is(err, broker.ErrConnectorOffline) {
		t.Fatalf("Read of in-flight session = %v, want *SessionEndedError with connector_offline", err)
	}
	if r, _ := s.Reason(); r != protocol.ReasonConnectorOffline {
		t.Errorf("Reason() = %q, want connector_offline", r)
	}
	if _, err := l.b.Dial(context.Background(), "c1", l.echo.Addr); !errors.Is(err, broker.ErrConnectorOffline) {
		t.Fatalf("Dial via offline connector = %v, want ErrConnectorOffline", err)
	} else {
		t.Logf("routing refuses: %v", err)
	}
	if u, _ := l.reg.Last("c1"); u.Status != broker.StatusOffline || u.Reason != "3 heartbeats missed" {
		t.Errorf("registry last update = %+v, want offline after 3 missed heartbeats", u)
	}

	f.unfreeze()
	l.waitOnline()
	s2, err := l.b.Dial(context.Background(), "c1", l.echo.Addr)
	if err != nil {
		t.Fatalf("Dial after recovery: %v", err)
	}
	s2.Close()
	if got := l.reg.Statuses("c1"); len(got) < 3 || got[0] != "online" || got[1] != "offline" || got[len(got)-1] != "online" {
		t.Errorf("registry statuses = %v, want online, offline, …, online", got)
	}
}

// TestTunnelLossOfflineAtOnce: closing the tunnel marks the connector
// Offline without waiting for heartbeats, and the client reconnects.
func TestTunnelLossOfflineAtOnce(t *testing.T) {
	var mu sync.Mutex
	var conns []net.Conn
	l := newLab(t, labOpts{editCfg: func(c *tunnel.Config) {
		c.DialControlPlane = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			return conn, err
		}
	}})
	l.waitOnline()
	s, err := l.b.Dial(context.Background(), "c1", l.echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	conns[0].Close()
	mu.Unlock()
	<-s.Done()
	if r, _ := s.Reason(); r != protocol.ReasonConnectorOffline {
		t.Errorf("Reason() = %q, want connector_offline", r)
	}
	l.waitOnline()
	if got := l.reg.Statuses("c1"); len(got) < 3 || got[1] != "offline" {
		t.Errorf("registry statuses = %v, want online, offline, online", got)
	}
}

// TestControlPlaneRestart: the control plane goes away and comes back on
// the same address; the client reconnects without help.
func TestControlPlaneRestart(t *testing.T) {
	l := newLab(t, labOpts{})
	l.waitOnline()
	addr := l.srv.Addr
	l.srv.Close()
	waitFor(t, "client reconnecting", func() bool { return l.client.Status().State == tunnel.StateReconnecting })

	reg := &broker.MemoryRegistry{}
	bc := broker.DefaultConfig()
	bc.Registry = reg
	b2, err := broker.New(bc)
	if err != nil {
		t.Fatal(err)
	}
	srv2, err := brokertest.Serve(b2, addr, l.tlsConf)
	if err != nil {
		t.Fatalf("restarting control plane on %s: %v", addr, err)
	}
	defer srv2.Close()
	waitFor(t, "connector back online on the new control plane", func() bool {
		s, ok := b2.Connector("c1")
		return ok && s.Status == broker.StatusOnline
	})
	s, err := b2.Dial(context.Background(), "c1", l.echo.Addr)
	if err != nil {
		t.Fatalf("Dial after restart: %v", err)
	}
	s.Close()
}

// TestDrain: Shutdown stops new sessions at once, lets the session in
// flight finish within the grace period, then Run returns.
func TestDrain(t *testing.T) {
	l := newLab(t, labOpts{})
	l.waitOnline()
	s, err := l.b.Dial(context.Background(), "c1", l.echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- l.client.Shutdown(context.Background()) }()
	l.waitStatus("c1", broker.StatusDraining)
	_, err = l.b.Dial(context.Background(), "c1", l.echo.Addr)
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
	if err := <-l.runErr; !errors.Is(err, tunnel.ErrClientClosed) {
		t.Fatalf("Run = %v, want ErrClientClosed", err)
	}
	l.runErr <- nil // for cleanup
	l.waitStatus("c1", broker.StatusOffline)
}

// TestDrainGraceExpires: a session that does not finish within the grace
// period is ended with reason draining.
func TestDrainGraceExpires(t *testing.T) {
	l := newLab(t, labOpts{})
	l.waitOnline()
	s, err := l.b.Dial(context.Background(), "c1", l.echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	shut := make(chan error, 1)
	go func() { shut <- l.client.Shutdown(ctx) }()
	l.waitStatus("c1", broker.StatusDraining)
	cancel() // grace period over
	if err := <-shut; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	<-s.Done()
	waitFor(t, "connector's draining report", func() bool {
		for _, e := range l.endsFor(s.ID) {
			if e.By == "connector" && e.Reason == string(protocol.ReasonDraining) {
				return true
			}
		}
		return false
	})
	<-l.runErr
	l.runErr <- nil
}

// TestDrainCompletedSessionKeepsReason: during a drain the connector
// closes the tunnel as soon as its last session ends. A session that
// ended normally before that (the connector relayed everything, reported
// the end, then closed the tunnel) keeps its reason even when the caller
// reads the end only after the tunnel is gone; connector_offline is only
// for sessions the tunnel loss cut. The caller's late read makes the race
// deterministic.
func TestDrainCompletedSessionKeepsReason(t *testing.T) {
	l := newLab(t, labOpts{})
	l.waitOnline()
	s, err := l.b.Dial(context.Background(), "c1", l.echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- l.client.Shutdown(context.Background()) }()
	l.waitStatus("c1", broker.StatusDraining)

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
	l.waitStatus("c1", broker.StatusOffline)

	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the drained tunnel closed = %d, %v; want io.EOF (the session ended normally)", n, err)
	}
	<-s.Done()
	if r, d := s.Reason(); r != protocol.ReasonClientClosed {
		t.Errorf("Reason() = %q (%s), want %q (our CloseWrite came first)", r, d, protocol.ReasonClientClosed)
	}
	for _, e := range l.endsFor(s.ID) {
		if e.Reason != string(protocol.ReasonClientClosed) {
			t.Errorf("session end %+v, want reason client_closed", e)
		}
	}
	if err := <-l.runErr; !errors.Is(err, tunnel.ErrClientClosed) {
		t.Fatalf("Run = %v, want ErrClientClosed", err)
	}
	l.runErr <- nil // for cleanup
}

// TestRTTRightAfterConnecting: the status has a round-trip time as soon as
// the tunnel is up, not only after the first heartbeat answer (here an
// hour away).
func TestRTTRightAfterConnecting(t *testing.T) {
	l := newLab(t, labOpts{interval: time.Hour})
	l.waitOnline()
	waitFor(t, "an RTT before the first heartbeat", func() bool { return l.client.Status().RTT > 0 })
	if s := l.client.Status(); !s.LastHeartbeat.IsZero() && s.LastHeartbeat.After(s.LastSuccess) {
		t.Errorf("a heartbeat was answered (%v) although the interval is an hour", s.LastHeartbeat)
	}
}
