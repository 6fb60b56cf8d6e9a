package controlplane

import (
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"
)

// TestServer is a lab control plane on 127.0.0.1:0 for tests.
type TestServer struct {
	*Server
	Authority *Authority
	StateDir  string
	CAFile    string // PEM of the CA, for connector configs
	CAPool    *x509.CertPool
}

// TestOption adjusts a test server's config before it starts.
type TestOption func(*Config, *ServerConfig)

// WithNow sets the authority's clock.
func WithNow(now func() time.Time) TestOption {
	return func(c *Config, _ *ServerConfig) { c.Now = now }
}

// WithTunnel sets the tunnel handler.
func WithTunnel(h TunnelHandler) TestOption {
	return func(_ *Config, s *ServerConfig) { s.Tunnel = h }
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
	cfg := DefaultConfig(dir)
	var scfg ServerConfig
	for _, o := range opts {
		o(&cfg, &scfg)
	}
	a, err := OpenAuthority(cfg)
	if err != nil {
		t.Fatalf("opening lab authority: %v", err)
	}
	scfg.Authority = a
	s, err := NewServer(scfg)
	if err != nil {
		a.Close()
		t.Fatalf("starting lab server: %v", err)
	}
	ts := &TestServer{Server: s, Authority: a, StateDir: dir, CAFile: filepath.Join(dir, "ca.pem"), CAPool: a.CA().Pool()}
	t.Cleanup(func() { ts.Stop() })
	return ts
}

// Stop closes the server and releases the state directory; it may be
// called more than once.
func (ts *TestServer) Stop() {
	if ts.Server != nil {
		ts.Server.Close()
		ts.Authority.Close()
		ts.Server = nil
	}
}
