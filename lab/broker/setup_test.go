package broker_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// lab is a broker on loopback TLS, a tunnel client for connector "c1"
// and an echo target.
type lab struct {
	t       *testing.T
	pki     *brokertest.PKI
	reg     *broker.MemoryRegistry
	b       *broker.Broker
	srv     *brokertest.Server
	echo    *brokertest.Echo
	client  *tunnel.Client
	tlsConf *tls.Config

	mu     sync.Mutex
	cert   tls.Certificate
	states []tunnel.State
	ends   []broker.SessionEnd

	runErr chan error
	cancel context.CancelFunc
}

type labOpts struct {
	interval time.Duration
	allowed  []string
	editCfg  func(*tunnel.Config)
	editB    func(*broker.Config)
	noRun    bool
	// authority makes the broker renew certificates with the lab's PKI.
	authority bool
	// cert issues the client's first certificate; nil: one hour from now.
	cert func(*brokertest.PKI) (tls.Certificate, error)
}

func logger(t *testing.T) *slog.Logger {
	if os.Getenv("TUNNEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func newLab(t *testing.T, o labOpts) *lab {
	t.Helper()
	if o.interval == 0 {
		o.interval = 10 * time.Second
	}
	pki, err := brokertest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, pki: pki, reg: &broker.MemoryRegistry{}, runErr: make(chan error, 1)}
	bc := broker.DefaultConfig()
	bc.HeartbeatInterval = o.interval
	bc.Registry = l.reg
	bc.Logger = logger(t)
	bc.OnSessionEnd = func(e broker.SessionEnd) {
		l.mu.Lock()
		l.ends = append(l.ends, e)
		l.mu.Unlock()
	}
	if o.authority {
		bc.Authority = pki
	}
	if o.editB != nil {
		o.editB(&bc)
	}
	if l.b, err = broker.New(bc); err != nil {
		t.Fatal(err)
	}
	if l.tlsConf, err = pki.ServerTLS(); err != nil {
		t.Fatal(err)
	}
	if l.srv, err = brokertest.Serve(l.b, "127.0.0.1:0", l.tlsConf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.srv.Close() })
	if l.echo, err = brokertest.NewEcho(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.echo.Close)
	if o.cert == nil {
		o.cert = func(p *brokertest.PKI) (tls.Certificate, error) {
			return p.ClientCert("c1", time.Now().Add(-time.Minute), time.Hour)
		}
	}
	if l.cert, err = o.cert(pki); err != nil {
		t.Fatal(err)
	}

	cfg := tunnel.DefaultConfig()
	cfg.Address = l.srv.Addr
	cfg.RootCAs = pki.Pool
	cfg.Certificate = func() (*tls.Certificate, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		c := l.cert
		return &c, nil
	}
	cfg.AllowedTargets = o.allowed
	cfg.Version = "test"
	cfg.Logger = logger(t)
	cfg.Backoff = tunnel.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Factor: 2}
	cfg.OnStatus = func(s tunnel.Status) {
		l.mu.Lock()
		l.states = append(l.states, s.State)
		l.mu.Unlock()
	}
	if o.editCfg != nil {
		o.editCfg(&cfg)
	}
	if l.client, err = tunnel.New(cfg); err != nil {
		t.Fatal(err)
	}
	if !o.noRun {
		l.run()
	}
	return l
}

func (l *lab) run() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() { l.runErr <- l.client.Run(ctx) }()
	l.t.Cleanup(func() {
		cancel()
		select {
		case <-l.runErr:
		case <-time.After(30 * time.Second):
			l.t.Error("tunnel client did not stop")
		}
	})
}

// waitFor polls cond; the limit only keeps a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *lab) waitStatus(id, status string) {
	l.t.Helper()
	waitFor(l.t, id+" "+status, func() bool {
		s, ok := l.b.Connector(id)
		return ok && s.Status == status
	})
}

func (l *lab) waitOnline() {
	l.t.Helper()
	l.waitStatus("c1", broker.StatusOnline)
	waitFor(l.t, "client online", func() bool { return l.client.Status().State == tunnel.StateOnline })
}

func (l *lab) endsFor(id string) []broker.SessionEnd {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []broker.SessionEnd
	for _, e := range l.ends {
		if e.SessionID == id {
			out = append(out, e)
		}
	}
	return out
}
