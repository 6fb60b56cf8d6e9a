package enrol

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vaultpam/appliance/connector/protocol"
)

// plainListener counts the bytes anyone sends to it, as a server in
// plain HTTP would receive them.
func plainListener(t *testing.T) (addr string, got *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				got.Add(n)
			}()
		}
	}()
	return ln.Addr().String(), got
}

func poolOf(s *httptest.Server) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.Certificate())
	return p
}

// A control plane (or something posing as one) that redirects the token
// request elsewhere — here to plain http:// — never gets it sent there.
func TestRedirectsAreNotFollowed(t *testing.T) {
	plain, received := plainListener(t)
	for _, loc := range []string{"http://" + plain + protocol.EnrolStartPath, "https://" + plain + protocol.EnrolStartPath, protocol.EnrolFinishPath} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, loc, http.StatusTemporaryRedirect)
		}))
		srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13}
		srv.StartTLS()
		defer srv.Close()
		tok, _ := protocol.NewToken(nil)
		c := &Client{URL: srv.URL, RootCAs: poolOf(srv), Name: "dc1"}
		_, err := c.Enrol(context.Background(), tok)
		if err == nil || !strings.Contains(err.Error(), "redirect") {
			t.Errorf("Enrol redirected to %s = %v, want a redirect refusal", loc, err)
		}
		if err != nil && strings.Contains(err.Error(), tok) {
			t.Errorf("the refusal repeats the token: %v", err)
		}
		t.Logf("%s → %v", loc, err)
	}
	if n := received.Load(); n != 0 {
		t.Errorf("the redirect target received %d bytes; want none (the token in clear text)", n)
	}
}

// Enrolment is TLS 1.3 only, as the tunnel: a server offering at most
// TLS 1.2 never sees the token.
func TestEnrolmentNeedsTLS13(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no", http.StatusTeapot)
	}))
	srv.TLS = &tls.Config{MaxVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	tok, _ := protocol.NewToken(nil)
	_, err := (&Client{URL: srv.URL, RootCAs: poolOf(srv)}).Enrol(context.Background(), tok)
	if err == nil || !strings.Contains(err.Error(), "TLS 1.3") {
		t.Errorf("Enrol against a TLS 1.2 server = %v, want a refusal naming TLS 1.3", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the TLS 1.2 server received %d requests", n)
	}
}
