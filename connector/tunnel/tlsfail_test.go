package tunnel_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// waitReconnecting waits until the client is reconnecting with a reason
// containing every want, failing at once if it goes to needs_recovery
// (a certificate problem on the control plane's side, or anything a
// TLS-inspecting proxy does, is never a verdict on the connector's
// identity).
func waitReconnecting(t *testing.T, h *brokertest.Harness, want ...string) tunnel.Status {
	t.Helper()
	var st tunnel.Status
	brokertest.WaitFor(t, "reconnecting with reason "+strings.Join(want, " … "), func() bool {
		st = h.Client.Status()
		if st.State == state.NeedsRecovery {
			t.Fatalf("state needs_recovery (%s); want reconnecting", st.Reason)
		}
		if st.State != state.Reconnecting {
			return false
		}
		for _, w := range want {
			if !strings.Contains(st.Reason, w) {
				return false
			}
		}
		return true
	})
	if st.Hint == "" {
		t.Errorf("reconnecting without a hint: %q", st.Reason)
	}
	t.Logf("reason: %s\nhint: %s", st.Reason, st.Hint)
	return st
}

// TestServerCertProblemsKeepReconnecting: whatever is wrong with the
// control plane's certificate, or with what answers in its place, the
// connector keeps reconnecting with a precise reason, and comes back
// Online by itself once the cause is gone. Each case is real TLS 1.3.
func TestServerCertProblemsKeepReconnecting(t *testing.T) {
	proxyCA, err := brokertest.NewPKINamed("Inspecting Proxy CA")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name string
		bad  func(p *brokertest.PKI) (*tls.Config, error)
		want []string
	}{
		{"expired", func(p *brokertest.PKI) (*tls.Config, error) {
			c, err := p.ServerCertFor(now.Add(-48*time.Hour), 24*time.Hour, "127.0.0.1")
			return brokertest.ServerTLSWith(c), err
		}, []string{"control plane certificate", "expired at " + now.Add(-24*time.Hour).UTC().Format("2006-01-02T15"), "check the clock (NTP)"}},
		{"not yet valid", func(p *brokertest.PKI) (*tls.Config, error) {
			c, err := p.ServerCertFor(now.Add(24*time.Hour), 24*time.Hour, "127.0.0.1")
			return brokertest.ServerTLSWith(c), err
		}, []string{"not valid before " + now.Add(24*time.Hour).UTC().Format("2006-01-02T15"), "check the clock (NTP)"}},
		{"unknown authority", func(*brokertest.PKI) (*tls.Config, error) {
			c, err := proxyCA.ServerCertFor(now.Add(-time.Hour), 24*time.Hour, "127.0.0.1")
			return brokertest.ServerTLSWith(c), err
		}, []string{`issued by "CN=Inspecting Proxy CA"`, "does not trust"}},
		{"wrong name", func(p *brokertest.PKI) (*tls.Config, error) {
			c, err := p.ServerCertFor(now.Add(-time.Hour), 24*time.Hour, "cp.example.test", "192.0.2.7")
			return brokertest.ServerTLSWith(c), err
		}, []string{"certificate is for cp.example.test, 192.0.2.7, not for 127.0.0.1"}},
		{"TLS alert about the client certificate", func(p *brokertest.PKI) (*tls.Config, error) {
			// What a TLS-terminating middlebox that checks client
			// certificates against its own CA does: a TLS alert.
			c, err := p.ServerCert()
			conf := brokertest.ServerTLSWith(c)
			conf.ClientAuth, conf.ClientCAs = tls.RequireAndVerifyClientCert, proxyCA.Pool
			return conf, err
		}, []string{"the TLS peer refused the client certificate", "a TLS-inspecting proxy cannot pass the connector's client certificate through: exempt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dials atomic.Int32
			h := brokertest.NewHarness(t, brokertest.Options{NoRun: true, EditClient: countDials(&dials)})
			good := h.TLS
			bad, err := tc.bad(h.PKI)
			if err != nil {
				t.Fatal(err)
			}
			h.SetServerTLS(bad)
			h.Run()
			waitReconnecting(t, h, tc.want...)
			// Still retrying (with backoff), never giving up.
			n := dials.Load()
			brokertest.WaitFor(t, "another attempt", func() bool { return dials.Load() > n })
			h.SetServerTLS(good) // the cause goes away
			h.WaitOnline()
		})
	}
}

// inspectingProxy is a TLS-inspecting proxy the operator made the
// connector trust: it terminates the connector's TLS with a certificate of
// its own CA and opens its own TLS connection to the control plane,
// presenting clientCert (nil: none). The connector's client certificate
// cannot pass through it.
func inspectingProxy(t *testing.T, ca *brokertest.PKI, upstream string, clientCert *tls.Certificate) string {
	t.Helper()
	cert, err := ca.ServerCertFor(time.Now().Add(-time.Hour), 24*time.Hour, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{broker.TunnelALPN}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				conf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{broker.TunnelALPN}}
				if clientCert != nil {
					conf.Certificates = []tls.Certificate{*clientCert}
				}
				up, err := tls.Dial("tcp", upstream, conf)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestInspectingProxyIsNotARefusal: with a TLS-inspecting proxy in between
// that the connector trusts, the control plane's application-level answer
// is about the proxy's certificate (or none), not the connector's: the
// connector keeps reconnecting and says why, and comes back Online once
// the proxy is out of the way.
func TestInspectingProxyIsNotARefusal(t *testing.T) {
	proxyCA, err := brokertest.NewPKINamed("Inspecting Proxy CA")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := proxyCA.ClientCert("proxy", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		cert  *tls.Certificate
		wants []string
	}{
		{"no client certificate", nil, []string{"the control plane received no client certificate", "exempt"}},
		{"the proxy's own certificate", &foreign, []string{"refused a client certificate that is not this connector's", "cert_unknown", "exempt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var viaProxy atomic.Bool
			var proxy atomic.Value // string, set once the control plane listens
			viaProxy.Store(true)
			h := brokertest.NewHarness(t, brokertest.Options{NoRun: true, EditClient: func(c *tunnel.Config) {
				// The operator trusted the proxy's CA.
				c.RootCAs = c.RootCAs.Clone()
				c.RootCAs.AddCert(proxyCA.Cert)
				c.DialControlPlane = func(ctx context.Context, network, addr string) (net.Conn, error) {
					if viaProxy.Load() {
						addr = proxy.Load().(string)
					}
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				}
			}})
			proxy.Store(inspectingProxy(t, proxyCA, h.Server.Addr, tc.cert))
			h.Run()
			waitReconnecting(t, h, tc.wants...)
			viaProxy.Store(false) // exempted from inspection
			h.WaitOnline()
		})
	}
}
