package tunnel

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/tlsreason"
	"github.com/vaultpam/appliance/connector/transport"
)

// tunnelALPN selects the tunnel on the control plane's TLS listener.
const tunnelALPN = protocol.ALPNTunnel

// permanentError marks a failure that retrying cannot fix; Run ends with
// ErrNeedsRecovery. Only two things are: no local identity at all, and the
// control plane refusing this connector's own certificate in its hello_ack.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// dialTLS connects to the control plane (through the proxy if configured)
// and completes the TLS 1.3 handshake with the tunnel ALPN.
func (c *Client) dialTLS(ctx context.Context) (*tls.Conn, error) {
	cert, err := c.cfg.Certificate()
	if err != nil {
		return nil, &permanentError{fmt.Errorf("loading client certificate: %w", err)}
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, &permanentError{errors.New("no client certificate")}
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, &permanentError{fmt.Errorf("parsing client certificate: %w", err)}
		}
	}
	// No local expiry check: this machine's clock may be wrong. The
	// control plane judges the certificate and says so in its hello_ack.
	c.certNotAfter.Store(leaf.NotAfter.UnixNano())
	c.certNotBefore.Store(leaf.NotBefore.UnixNano())
	c.certSHA256.Store(protocol.CertFingerprint(leaf.Raw))

	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	raw, err := c.dialTCP(ctx)
	if err != nil {
		return nil, err
	}
	serverName := c.cfg.ServerName
	if serverName == "" {
		serverName, _, _ = net.SplitHostPort(c.cfg.Address)
	}
	tc := tls.Client(transport.NewBatchConn(raw), &tls.Config{
		ServerName: serverName,
		RootCAs:    c.cfg.RootCAs,
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{tunnelALPN},
		Time:       c.now,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		},
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, c.explain(fmt.Errorf("TLS handshake with %s: %w", c.cfg.Address, err))
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != tunnelALPN {
		tc.Close()
		return nil, fmt.Errorf("control plane at %s does not speak the tunnel protocol (ALPN %q)", c.cfg.Address, p)
	}
	return tc, nil
}

// explain turns a TLS failure into a precise, transient reason (package
// tlsreason): neither a certificate this connector cannot verify nor a
// TLS alert (which may come from a proxy) is a verdict on its identity.
func (c *Client) explain(err error) error {
	return tlsreason.Wrap(err, c.cfg.Address, c.now())
}

// dialTCP opens the TCP connection to the control plane, directly or with
// an HTTP CONNECT through the proxy.
func (c *Client) dialTCP(ctx context.Context) (net.Conn, error) {
	dial := c.cfg.DialControlPlane
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	if c.cfg.Proxy == nil {
		conn, err := dial(ctx, "tcp", c.cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("connecting to control plane %s: %w", c.cfg.Address, err)
		}
		return conn, nil
	}
	p := c.cfg.Proxy
	proxyAddr := p.Host
	if p.Port() == "" {
		proxyAddr = net.JoinHostPort(p.Hostname(), "80")
	}
	conn, err := dial(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("connecting to proxy %s: %w", proxyAddr, err)
	}
	if err := ConnectThrough(ctx, conn, c.cfg.Address, p.User); err != nil {
		conn.Close()
		return nil, fmt.Errorf("proxy %s: %w", proxyAddr, err)
	}
	return conn, nil
}

// ConnectThrough sends CONNECT addr on conn (a connection to an HTTP
// proxy) and reads the proxy's answer byte by byte: the TLS handshake
// follows on the same connection, so nothing past the answer's header may
// be read away. user, when set, goes in Proxy-Authorization (never in an
// error). The diagnostics use it too.
func ConnectThrough(ctx context.Context, conn net.Conn, addr string, user *url.Userinfo) error {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
		defer conn.SetDeadline(time.Time{})
	}
	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if user != nil {
		pw, _ := user.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user.Username()+":"+pw)) + "\r\n"
	}
	req += "\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return fmt.Errorf("sending CONNECT: %w", err)
	}
	var head []byte
	var b [1]byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if len(head) > 8<<10 {
			return errors.New("CONNECT answer header too long")
		}
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			return fmt.Errorf("reading CONNECT answer: %w", err)
		}
		head = append(head, b[0])
	}
	status, _, _ := strings.Cut(string(head), "\r\n")
	proto, rest, _ := strings.Cut(status, " ")
	code, _, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 || code[0] != '2' {
		return fmt.Errorf("CONNECT %s refused: %q", addr, status)
	}
	return nil
}
