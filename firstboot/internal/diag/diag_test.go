package diag

import (
	"bufio"
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func server(t *testing.T) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, pool
}

func messages(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.Message + "\n")
	}
	return b.String()
}

func TestAllStepsPass(t *testing.T) {
	srv, pool := server(t)
	rs := Run(context.Background(), Config{ControlPlaneURL: srv.URL, RootCAs: pool}, nil)
	if f, bad := Failed(rs); bad || len(rs) != 4 {
		t.Fatalf("Run() = \n%s failed %q, want 4 passing steps", messages(rs), f.Message)
	}
}

func TestFailuresNameTheStep(t *testing.T) {
	srv, pool := server(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"dns", Config{ControlPlaneURL: "https://cp.does-not-exist.invalid", DNS: []string{"127.0.0.1"}, Timeout: 2 * time.Second},
			"DNS: cp.does-not-exist.invalid does not resolve via 127.0.0.1"},
		{"tcp", Config{ControlPlaneURL: "https://" + closed}, "TCP: cannot connect to " + closed + ": connection refused"},
		{"tls untrusted", Config{ControlPlaneURL: srv.URL}, "TLS: " + strings.TrimPrefix(srv.URL, "https://") + " is not trusted: "},
		{"clock", Config{ControlPlaneURL: srv.URL, RootCAs: pool, Now: func() time.Time { return time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC) }},
			"TLS: the certificate of 127.0.0.1 is not valid at this appliance's time 2100-01-01T00:00:00Z; check the clock and NTP servers"},
		{"skew", Config{ControlPlaneURL: srv.URL, RootCAs: pool, Now: func() time.Time { return time.Now().Add(time.Hour) }},
			"Clock: local time differs from the control plane's by 1h0m"},
	} {
		rs := Run(context.Background(), tc.cfg, nil)
		f, bad := Failed(rs)
		if !bad || !strings.HasPrefix(f.Message, tc.want) {
			t.Errorf("%s: Run() failed with %q, want prefix %q\n%s", tc.name, f.Message, tc.want, messages(rs))
		}
		if last := rs[len(rs)-1]; last.Step != StepClock {
			t.Errorf("%s: last step %s, want every step reported", tc.name, last.Step)
		}
	}
}

// connectProxy is a minimal HTTP CONNECT proxy on loopback that records
// the targets it was asked for.
func connectProxy(t *testing.T) (addr string, targets chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	targets = make(chan string, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				targets <- req.Host
				up, err := net.Dial("tcp", req.Host)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return l.Addr().String(), targets
}

func TestThroughProxy(t *testing.T) {
	srv, pool := server(t)
	proxy, targets := connectProxy(t)
	rs := Run(context.Background(), Config{ControlPlaneURL: srv.URL, RootCAs: pool, Proxy: "http://" + proxy}, nil)
	if f, bad := Failed(rs); bad {
		t.Fatalf("Run() through proxy failed: %s\n%s", f.Message, messages(rs))
	}
	if got, want := <-targets, strings.TrimPrefix(srv.URL, "https://"); got != want {
		t.Errorf("proxy was asked for %q, want %q", got, want)
	}
	if !strings.Contains(rs[1].Message, "through proxy") {
		t.Errorf("TCP step %q does not mention the proxy", rs[1].Message)
	}
}

// The checks run one by one on a Probe, as the console's apply pipeline
// runs them, give what Run gives; a check whose predecessor did not pass
// says it was not checked instead of failing on its own.
func TestChecksOneByOne(t *testing.T) {
	srv, pool := server(t)
	var names []string
	p := NewProbe(Config{ControlPlaneURL: srv.URL, RootCAs: pool})
	defer p.Close()
	for _, c := range Checks() {
		names = append(names, c.Name)
		if r := c.Run(context.Background(), p); !r.OK || r.Step != c.Name {
			t.Errorf("check %s = %+v, want passed", c.Name, r)
		}
	}
	if got, want := strings.Join(names, " "), "DNS TCP TLS Clock"; got != want {
		t.Errorf("Checks() = %s, want %s", got, want)
	}

	alone := NewProbe(Config{ControlPlaneURL: srv.URL, RootCAs: pool})
	defer alone.Close()
	for _, c := range Checks()[1:] {
		if r := c.Run(context.Background(), alone); !r.Skipped || r.Message != c.Name+": not checked" {
			t.Errorf("check %s without the checks before it = %+v, want skipped (not checked)", c.Name, r)
		}
	}
}

// TestUntrustedChainIsKept: an untrusted server's TLS failure carries the
// chain it presented, so the console can show its root's fingerprint, and
// trusting that root makes the check pass.
func TestUntrustedChainIsKept(t *testing.T) {
	srv, _ := server(t)
	rs := Run(context.Background(), Config{ControlPlaneURL: srv.URL}, nil)
	f, bad := Failed(rs)
	if !bad || f.Step != StepTLS || !f.Untrusted || f.Root() == nil || !f.Root().Equal(srv.Certificate()) {
		t.Fatalf("untrusted server: %+v; want a TLS failure with the presented chain", f)
	}
	// Trusting that root makes the check pass.
	trusted := x509.NewCertPool()
	trusted.AddCert(f.Root())
	if f, bad := Failed(Run(context.Background(), Config{ControlPlaneURL: srv.URL, RootCAs: trusted}, nil)); bad {
		t.Errorf("with the root trusted: %s", f.Message)
	}
}
