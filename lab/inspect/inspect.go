// Package inspect is a TLS-inspecting HTTP CONNECT proxy for the lab and
// the tests: the kind of middlebox an enterprise network puts between an
// appliance and its control plane (it re-signs every TLS session with its
// own CA), so the connector's and the console's handling of it is tried
// against the real thing.
package inspect

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is an HTTP CONNECT proxy that inspects TLS the way
// corporate proxies do: it terminates the client's TLS with a certificate
// for the CONNECT target that its own CA signs on the fly, opens its own
// TLS connection to the target (verifying it against Upstream), and relays
// the plaintext between the two.
//
// Mutual TLS cannot be inspected (the proxy cannot present the client's
// certificate), so, like the decryption-exclusion cache of commercial
// firewalls, it asks inspected clients for a certificate too: a client
// that presents one has its session dropped and the target excluded from
// inspection from then on; later connections to it are passed through
// untouched. Connections whose ClientHello offers an ALPN protocol in
// Splice are always passed through (an exemption an administrator sets).
//
// It is a real proxy for tests: real TLS on both sides, one goroutine pair
// per connection. Counts of what it did are in Inspected, Spliced and
// Excluded.
type Proxy struct {
	// CA is the proxy's own CA certificate (PEM): what an appliance behind
	// it must trust.
	CA     []byte
	CACert *x509.Certificate

	Inspected atomic.Int64 // TLS handshakes answered with a re-signed certificate
	Spliced   atomic.Int64 // CONNECTs passed through (Splice ALPN, or an excluded target)
	Excluded  atomic.Int64 // sessions dropped because the client presented a certificate

	cfg   Config
	key   *ecdsa.PrivateKey
	mu    sync.Mutex
	certs map[string]*tls.Certificate // by target host
	skip  map[string]bool             // targets excluded from inspection (mutual TLS seen)
	l     net.Listener
	wg    sync.WaitGroup
}

// Config says where the proxy listens, how it reaches targets and
// what it trusts.
type Config struct {
	Listener net.Listener // required; the proxy serves on it until Close
	// Dial opens connections to CONNECT targets (a namespace's dialer in
	// tests); nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Upstream verifies the targets' certificates. Required.
	Upstream *x509.CertPool
	// Splice lists ALPN protocols passed through without inspection.
	Splice []string
}

// NewProxy makes the proxy's CA and serves on cfg.Listener.
func New(cfg Config) (*Proxy, error) {
	if cfg.Listener == nil || cfg.Upstream == nil {
		return nil, errors.New("inspecting proxy: Listener and Upstream are required")
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1),
		Subject:   pkix.Name{CommonName: "Test Inspecting Proxy CA", Organization: []string{"VaultPAM tests"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(der)
	p := &Proxy{CA: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), CACert: ca,
		cfg: cfg, key: key, certs: map[string]*tls.Certificate{}, skip: map[string]bool{}, l: cfg.Listener}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is where the proxy listens.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Close stops accepting; connections in flight end with their peers.
func (p *Proxy) Close() error {
	err := p.l.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

// leaf returns a certificate for host, signed by the proxy's CA, with the
// CA in the chain as inspecting proxies send it.
func (p *Proxy) leaf(host string) (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.certs[host]; c != nil {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CACert, &key.PublicKey, p.key)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der, p.CACert.Raw}, PrivateKey: key}
	p.certs[host] = c
	return c, nil
}

// recording remembers what was read from a connection until stopped, so
// a peeked ClientHello can be replayed to the target.
type recording struct {
	net.Conn
	buf     bytes.Buffer
	on      bool
	swallow bool // crypto/tls answers a refused ClientHello with an alert: not this one
}

func (r *recording) Write(b []byte) (int, error) {
	if r.swallow {
		return len(b), nil
	}
	return r.Conn.Write(b)
}

func (r *recording) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	if r.on {
		r.buf.Write(b[:n])
	}
	return n, err
}

var errSplice = errors.New("splice")

func (p *Proxy) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		fmt.Fprintf(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	target := req.Host
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if br.Buffered() > 0 {
		return // a client that does not wait for the answer
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	up, err := p.cfg.Dial(ctx, "tcp", target)
	cancel()
	if err != nil {
		fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	fmt.Fprintf(c, "HTTP/1.1 200 Connection established\r\n\r\n")

	p.mu.Lock()
	excluded := p.skip[target]
	p.mu.Unlock()
	if excluded {
		p.Spliced.Add(1)
		c.SetDeadline(time.Time{})
		relay(c, up)
		return
	}
	rec := &recording{Conn: c, on: true}
	srv := tls.Server(rec, &tls.Config{
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			for _, s := range p.cfg.Splice {
				if slices.Contains(hi.SupportedProtos, s) {
					rec.swallow = true
					return nil, errSplice
				}
			}
			leaf, err := p.leaf(host)
			if err != nil {
				return nil, err
			}
			p.Inspected.Add(1)
			return &tls.Config{Certificates: []tls.Certificate{*leaf}, NextProtos: hi.SupportedProtos,
				ClientAuth: tls.RequestClientCert}, nil
		},
	})
	err = srv.Handshake()
	rec.on = false
	if rec.swallow {
		// Nothing was written to the client yet: hand its ClientHello to
		// the target and step aside.
		p.Spliced.Add(1)
		c.SetDeadline(time.Time{})
		up.Write(rec.buf.Bytes())
		relay(c, up)
		return
	}
	if err != nil {
		return // the client refused our certificate: inspection shows it
	}
	if len(srv.ConnectionState().PeerCertificates) > 0 {
		// Mutual TLS: cannot be inspected. Drop this session and pass the
		// target through from now on.
		p.mu.Lock()
		p.skip[target] = true
		p.mu.Unlock()
		p.Excluded.Add(1)
		return
	}
	c.SetDeadline(time.Time{})
	var protos []string
	if np := srv.ConnectionState().NegotiatedProtocol; np != "" {
		protos = []string{np}
	}
	tc := tls.Client(up, &tls.Config{ServerName: host, RootCAs: p.cfg.Upstream, NextProtos: protos})
	if err := tc.Handshake(); err != nil {
		return
	}
	relay(srv, tc)
}

// relay copies both ways until both directions end.
func relay(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}
