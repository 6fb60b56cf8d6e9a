package brokertest

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/backoff"
	"github.com/vaultpam/appliance/connector/state"

	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker"
)

// Harness is the test bed for the tunnel's behaviour on both of its ends: a
// Broker on loopback TLS, a tunnel.Client for connector "c1" and an echo
// target. The broker's tests (package broker_test) and the connector's
// tunnel tests (package tunnel_test) both stand on it.
//
// Set TUNNEL_TEST_LOG=1 to see both sides' logs.
type Harness struct {
	T        testing.TB
	PKI      *PKI
	Registry *broker.MemoryRegistry
	Broker   *broker.Broker
	Server   *Server
	Echo     *Echo
	Client   *tunnel.Client
	TLS      *tls.Config // the control plane's at start; SetServerTLS changes it
	// RunErr receives the client's Run result once. A test that takes it
	// puts a value back, so the cleanup does not wait for a second one.
	RunErr chan error

	mu        sync.Mutex
	cert      tls.Certificate
	serverTLS *tls.Config
	states    []state.State
	ends      []broker.SessionEnd
}

// Options shape a Harness. The zero value is a broker with a 10 s heartbeat
// and a running client with a valid one-hour certificate, allowing the
// loopback echo target (allowed_targets ["127.0.0.1"]).
type Options struct {
	Interval time.Duration // heartbeat interval; 0 means 10 s
	// Allowed is the client's allowed_targets; nil means ["127.0.0.1"]
	// (loopback is in the default deny set: the echo target must be
	// named), unless DefaultPolicy.
	Allowed []string
	// DefaultPolicy runs the client with no allowed_targets at all: the
	// default deny set alone (the loopback echo target is refused).
	DefaultPolicy bool
	// EditClient and EditBroker change the configurations before start.
	EditClient func(*tunnel.Config)
	EditBroker func(*broker.Config)
	// NoRun leaves the client stopped: call Run.
	NoRun bool
	// Authority makes the broker renew certificates with the PKI.
	Authority bool
	// Cert issues the client's first certificate; nil: valid for one hour.
	Cert func(*PKI) (tls.Certificate, error)
}

// Logger is the harness's logger: nil (discard) unless TUNNEL_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("TUNNEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// NewHarness starts the broker, the echo target and (unless o.NoRun) the
// client; everything stops at the end of the test.
func NewHarness(t testing.TB, o Options) *Harness {
	t.Helper()
	if o.Interval == 0 {
		o.Interval = 10 * time.Second
	}
	pki, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{T: t, PKI: pki, Registry: &broker.MemoryRegistry{}, RunErr: make(chan error, 1)}
	bc := broker.DefaultConfig()
	bc.HeartbeatInterval = o.Interval
	bc.Registry = h.Registry
	bc.ClientCAs = pki.Pool
	bc.Logger = Logger()
	bc.OnSessionEnd = func(e broker.SessionEnd) {
		h.mu.Lock()
		h.ends = append(h.ends, e)
		h.mu.Unlock()
	}
	if o.Authority {
		bc.Authority = pki
	}
	if o.EditBroker != nil {
		o.EditBroker(&bc)
	}
	if h.Broker, err = broker.New(bc); err != nil {
		t.Fatal(err)
	}
	if h.TLS, err = pki.ServerTLS(); err != nil {
		t.Fatal(err)
	}
	h.serverTLS = h.TLS
	// Every handshake takes the current config, so a test can swap the
	// control plane's certificate (expired, wrong name…) and back.
	live := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.serverTLS, nil
	}}
	if h.Server, err = Serve(h.Broker, "127.0.0.1:0", live); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Server.Close() })
	if h.Echo, err = NewEcho(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Echo.Close)
	if o.Cert == nil {
		o.Cert = func(p *PKI) (tls.Certificate, error) {
			return p.ClientCert("c1", time.Now().Add(-time.Minute), time.Hour)
		}
	}
	if h.cert, err = o.Cert(pki); err != nil {
		t.Fatal(err)
	}

	cfg := tunnel.DefaultConfig()
	cfg.Address = h.Server.Addr
	cfg.RootCAs = pki.Pool
	cfg.Certificate = func() (*tls.Certificate, error) {
		c := h.Cert()
		return &c, nil
	}
	cfg.AllowedTargets = o.Allowed
	if o.Allowed == nil && !o.DefaultPolicy {
		cfg.AllowedTargets = []string{"127.0.0.1"}
	}
	cfg.Version = "test"
	cfg.Logger = Logger()
	cfg.Backoff = backoff.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Factor: 2}
	cfg.OnStatus = func(s tunnel.Status) {
		h.mu.Lock()
		h.states = append(h.states, s.State)
		h.mu.Unlock()
	}
	if o.EditClient != nil {
		o.EditClient(&cfg)
	}
	if h.Client, err = tunnel.New(cfg); err != nil {
		t.Fatal(err)
	}
	if !o.NoRun {
		h.Run()
	}
	return h
}

// Run starts the client; its result goes to RunErr.
func (h *Harness) Run() {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.RunErr <- h.Client.Run(ctx) }()
	h.T.Cleanup(func() {
		cancel()
		select {
		case <-h.RunErr:
		case <-time.After(30 * time.Second):
			h.T.Error("tunnel client did not stop")
		}
	})
}

// Cert is the client certificate the client presents on its next dial.
func (h *Harness) Cert() tls.Certificate {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cert
}

// SetCert replaces the client certificate for the next dial.
func (h *Harness) SetCert(c tls.Certificate) {
	h.mu.Lock()
	h.cert = c
	h.mu.Unlock()
}

// SetServerTLS replaces the control plane's TLS config for the next
// handshakes (established tunnels keep theirs).
func (h *Harness) SetServerTLS(c *tls.Config) {
	h.mu.Lock()
	h.serverTLS = c
	h.mu.Unlock()
}

// States returns the client's states so far, oldest first.
func (h *Harness) States() []state.State {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]state.State(nil), h.states...)
}

// EndsFor returns the session ends the broker recorded for session id.
func (h *Harness) EndsFor(id string) []broker.SessionEnd {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []broker.SessionEnd
	for _, e := range h.ends {
		if e.SessionID == id {
			out = append(out, e)
		}
	}
	return out
}

// WaitFor polls cond; the limit only keeps a broken test from hanging.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitStatus waits until the broker shows connector id with status.
func (h *Harness) WaitStatus(id, status string) {
	h.T.Helper()
	WaitFor(h.T, id+" "+status, func() bool {
		s, ok := h.Broker.Connector(id)
		return ok && s.Status == status
	})
}

// WaitOnline waits until both ends see connector c1 online.
func (h *Harness) WaitOnline() {
	h.T.Helper()
	h.WaitStatus("c1", broker.StatusOnline)
	WaitFor(h.T, "client online", func() bool { return h.Client.Status().State == state.Online })
}
