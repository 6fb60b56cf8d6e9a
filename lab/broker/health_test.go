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
	"github.com/vaultpam/appliance/connector/state"
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
	l := brokertest.NewHarness(t, brokertest.Options{Interval: time.Second, EditClient: func(c *tunnel.Config) { c.DialControlPlane = f.dial }})
	l.WaitOnline()
	s, err := l.Broker.Dial(context.Background(), "c1", l.Echo.Addr)
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
	l.WaitStatus("c1", broker.StatusOffline)
	t.Logf("offline %v after the freeze (heartbeat interval 1s; reported, not asserted)", time.Since(frozenAt).Round(time.Millisecond))
	err = <-readErr
	var ended *broker.SessionEndedError
	if !errors.As(err, &ended) || !errors.Is(err, broker.ErrConnectorOffline) {
		t.Fatalf("Read of in-flight session = %v, want *SessionEndedError with connector_offline", err)
	}
	if r, _ := s.Reason(); r != protocol.ReasonConnectorOffline {
		t.Errorf("Reason() = %q, want connector_offline", r)
	}
	if _, err := l.Broker.Dial(context.Background(), "c1", l.Echo.Addr); !errors.Is(err, broker.ErrConnectorOffline) {
		t.Fatalf("Dial via offline connector = %v, want ErrConnectorOffline", err)
	} else {
		t.Logf("routing refuses: %v", err)
	}
	if u, _ := l.Registry.Last("c1"); u.Status != broker.StatusOffline || u.Reason != "3 heartbeats missed" {
		t.Errorf("registry last update = %+v, want offline after 3 missed heartbeats", u)
	}

	f.unfreeze()
	l.WaitOnline()
	if n := l.Client.Counters().Snapshot(); n.Reconnects() < 1 || n.Sessions[string(protocol.ReasonConnectorOffline)] != 1 {
		t.Errorf("counters after the loss: %d reconnects, sessions %v; want a reconnect and the cut session counted", n.Reconnects(), n.Sessions)
	}
	s2, err := l.Broker.Dial(context.Background(), "c1", l.Echo.Addr)
	if err != nil {
		t.Fatalf("Dial after recovery: %v", err)
	}
	s2.Close()
	if got := l.Registry.Statuses("c1"); len(got) < 3 || got[0] != "online" || got[1] != "offline" || got[len(got)-1] != "online" {
		t.Errorf("registry statuses = %v, want online, offline, …, online", got)
	}
}

// TestTunnelLossOfflineAtOnce: closing the tunnel marks the connector
// Offline without waiting for heartbeats, and the client reconnects.
func TestTunnelLossOfflineAtOnce(t *testing.T) {
	var mu sync.Mutex
	var conns []net.Conn
	l := brokertest.NewHarness(t, brokertest.Options{EditClient: func(c *tunnel.Config) {
		c.DialControlPlane = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			return conn, err
		}
	}})
	l.WaitOnline()
	s, err := l.Broker.Dial(context.Background(), "c1", l.Echo.Addr)
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
	l.WaitOnline()
	if got := l.Registry.Statuses("c1"); len(got) < 3 || got[1] != "offline" {
		t.Errorf("registry statuses = %v, want online, offline, online", got)
	}
}

// TestControlPlaneRestart: the control plane goes away and comes back on
// the same address; the client reconnects without help.
func TestControlPlaneRestart(t *testing.T) {
	l := brokertest.NewHarness(t, brokertest.Options{})
	l.WaitOnline()
	addr := l.Server.Addr
	l.Server.Close()
	brokertest.WaitFor(t, "client reconnecting", func() bool { return l.Client.Status().State == state.Reconnecting })

	reg := &broker.MemoryRegistry{}
	bc := broker.DefaultConfig()
	bc.Registry = reg
	bc.ClientCAs = l.PKI.Pool
	b2, err := broker.New(bc)
	if err != nil {
		t.Fatal(err)
	}
	srv2, err := brokertest.Serve(b2, addr, l.TLS)
	if err != nil {
		t.Fatalf("restarting control plane on %s: %v", addr, err)
	}
	defer srv2.Close()
	brokertest.WaitFor(t, "connector back online on the new control plane", func() bool {
		s, ok := b2.Connector("c1")
		return ok && s.Status == broker.StatusOnline
	})
	s, err := b2.Dial(context.Background(), "c1", l.Echo.Addr)
	if err != nil {
		t.Fatalf("Dial after restart: %v", err)
	}
	s.Close()
}
