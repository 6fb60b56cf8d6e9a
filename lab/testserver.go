package lab

import (
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"
)

// TestServer is a lab control plane on 127.0.0.1:0 for tests, broker
// included.
type TestServer struct {
	*Server
	Lab       *ControlPlane
	Authority *Authority
	StateDir  string
	CAFile    string // PEM of the CA, for connector configs
	CAPool    *x509.CertPool
	// AdminPassword signs in to the approval page.
	AdminPassword string
}

// TestOption adjusts a test server's config before it starts.
type TestOption func(*Config)

// WithNow sets the authority's clock.
func WithNow(now func() time.Time) TestOption {
	return func(c *Config) { c.Authority.Now = now }
}

// WithHeartbeat sets the heartbeat interval connectors are told to use.
func WithHeartbeat(d time.Duration) TestOption {
	return func(c *Config) { c.HeartbeatInterval = d }
}

// WithCertTTL sets the lifetime of issued client certificates.
func WithCertTTL(d time.Duration) TestOption {
	return func(c *Config) { c.Authority.CertTTL = d }
}

// WithPairing sets the pairing codes' lifetime and the poll interval
// (whole seconds; 0 keeps a default).
func WithPairing(ttl, interval time.Duration) TestOption {
	return func(c *Config) { c.Authority.PairTTL, c.Authority.PairInterval = ttl, interval }
}

// WithListen sets the listen address (to restart on the same port).
func WithListen(addr string) TestOption {
	return func(c *Config) { c.Listen = addr }
}

// NewTest starts a lab control plane with a fresh state directory under
// t.TempDir() and stops it when the test ends.
func NewTest(t testing.TB, opts ...TestOption) *TestServer {
	t.Helper()
	return NewTestAt(t, t.TempDir(), opts...)
}

// NewTestAt is NewTest with a given state directory, to restart a control
// plane on the state of a previous one.
func NewTestAt(t testing.TB, dir string, opts ...TestOption) *TestServer {
	t.Helper()
	cfg := Config{Authority: DefaultAuthorityConfig(dir)}
	for _, o := range opts {
		o(&cfg)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("starting lab control plane: %v", err)
	}
	a := l.Authority
	ts := &TestServer{Server: l.Server, Lab: l, Authority: a, StateDir: dir, CAFile: filepath.Join(dir, "ca.pem"), CAPool: a.CA().Pool(),
		AdminPassword: l.AdminPassword}
	t.Cleanup(func() { ts.Stop() })
	return ts
}

// Stop closes the server and releases the state directory; it may be
// called more than once.
func (ts *TestServer) Stop() {
	if ts.Server != nil {
		ts.Lab.Close()
		ts.Server = nil
	}
}
