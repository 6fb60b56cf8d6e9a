package inspect

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"
)

// pki makes a CA and a leaf for 127.0.0.1 (server and client use).
func pki(t *testing.T, cn string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	lt := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, lt, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// viaProxy opens a CONNECT tunnel to target through the proxy.
func viaProxy(t *testing.T, proxy, target string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	return c
}

// TestProxy: a client offering HTTP gets the proxy's re-signed
// certificate (chain: leaf for the target, then the proxy's CA) and talks
// to the real server through it; a client offering the tunnel's ALPN is
// passed through and does mutual TLS with the real server.
func TestProxy(t *testing.T) {
	serverPool, serverCert := pki(t, "control plane")
	clientPool, clientCert := pki(t, "connector")
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert},
		NextProtos: []string{"vaultpam-tunnel/1", "http/1.1"}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientPool})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if tc.Handshake() != nil {
					return
				}
				st := tc.ConnectionState()
				fmt.Fprintf(c, "%s client-certs=%d\n", st.NegotiatedProtocol, len(st.PeerCertificates))
			}()
		}
	}()
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	p, err := New(Config{Listener: pl, Upstream: serverPool, Splice: []string{"vaultpam-tunnel/1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// Inspected: the server's answer comes through, the chain is the proxy's.
	proxyPool := x509.NewCertPool()
	proxyPool.AddCert(p.CACert)
	c := tls.Client(viaProxy(t, p.Addr(), l.Addr().String()), &tls.Config{ServerName: "127.0.0.1", RootCAs: proxyPool, NextProtos: []string{"http/1.1"}})
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake with the proxy: %v", err)
	}
	chain := c.ConnectionState().PeerCertificates
	if len(chain) != 2 || !chain[1].Equal(p.CACert) {
		t.Errorf("inspected chain has %d certificates; want the leaf and the proxy CA", len(chain))
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	if line != "http/1.1 client-certs=0\n" {
		t.Errorf("through inspection the server said %q", line)
	}
	c.Close()

	// Passed through: mutual TLS with the server itself.
	cert := clientCert
	c = tls.Client(viaProxy(t, p.Addr(), l.Addr().String()), &tls.Config{ServerName: "127.0.0.1", RootCAs: serverPool,
		NextProtos: []string{"vaultpam-tunnel/1"}, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake passed through: %v", err)
	}
	b, _ := io.ReadAll(c)
	if string(b) != "vaultpam-tunnel/1 client-certs=1\n" {
		t.Errorf("passed through, the server said %q", b)
	}
	if p.Inspected.Load() != 1 || p.Spliced.Load() != 1 {
		t.Errorf("inspected %d, spliced %d; want 1 and 1", p.Inspected.Load(), p.Spliced.Load())
	}

	// HTTP with a client certificate (mutual TLS) cannot be inspected:
	// that session is dropped, and the target is passed through from then
	// on, to clients with or without one.
	withCert := func() *tls.Conn {
		return tls.Client(viaProxy(t, p.Addr(), l.Addr().String()), &tls.Config{ServerName: "127.0.0.1", RootCAs: proxyPool,
			NextProtos: []string{"http/1.1"}, Certificates: []tls.Certificate{clientCert}})
	}
	c = withCert()
	c.Handshake()
	if b, _ := io.ReadAll(c); len(b) != 0 || p.Excluded.Load() != 1 {
		t.Errorf("mutual TLS through inspection: got %q, %d excluded; want the session dropped", b, p.Excluded.Load())
	}
	c = tls.Client(viaProxy(t, p.Addr(), l.Addr().String()), &tls.Config{ServerName: "127.0.0.1", RootCAs: serverPool,
		NextProtos: []string{"http/1.1"}, Certificates: []tls.Certificate{clientCert}})
	if err := c.Handshake(); err != nil {
		t.Fatalf("after the exclusion, the server's own chain: %v", err)
	}
	if b, _ := io.ReadAll(c); string(b) != "http/1.1 client-certs=1\n" {
		t.Errorf("excluded target, the server said %q", b)
	}
}
