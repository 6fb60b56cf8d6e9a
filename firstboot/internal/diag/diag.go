// Package diag checks that the appliance can reach its control plane, one
// step at a time — DNS, TCP, TLS, clock — and names the step that fails in
// words an operator can act on ("DNS: cp.example.com does not resolve via
// 192.0.2.53").
package diag

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Step names.
const (
	StepDNS   = "DNS"
	StepTCP   = "TCP"
	StepTLS   = "TLS"
	StepClock = "Clock"
)

// Config says what to check. The zero value of every optional field works.
type Config struct {
	ControlPlaneURL string
	DNS             []string       // resolve through these servers; empty = the system resolver
	Proxy           string         // http://host:port; empty = direct
	RootCAs         *x509.CertPool // nil = system roots
	Now             func() time.Time
	Timeout         time.Duration // per step; 0 = 5 s
	// Dial opens TCP connections; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxSkew is how far the local clock may be from the control plane's; 0 = 5 min.
	MaxSkew time.Duration
}

// Result is the outcome of one step.
type Result struct {
	Step    string
	OK      bool
	Skipped bool
	Message string // "DNS: cp.example.com resolves to 192.0.2.1 via 192.0.2.53", or what failed
}

// Failed returns the first failed result, if any.
func Failed(rs []Result) (Result, bool) {
	for _, r := range rs {
		if !r.OK && !r.Skipped {
			return r, true
		}
	}
	return Result{}, false
}

// Run runs the steps in order, calling progress (if not nil) after each,
// and stops at the first failure: later steps are reported as skipped.
func Run(ctx context.Context, c Config, progress func(Result)) []Result {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.MaxSkew == 0 {
		c.MaxSkew = 5 * time.Minute
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	var out []Result
	add := func(r Result) bool {
		out = append(out, r)
		if progress != nil {
			progress(r)
		}
		return r.OK || r.Skipped
	}
	u, err := url.Parse(c.ControlPlaneURL)
	if err != nil || u.Hostname() == "" {
		add(Result{Step: StepDNS, Message: fmt.Sprintf("URL: %q is not a control plane URL", c.ControlPlaneURL)})
		return out
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	// Through a proxy, the appliance resolves and reaches the proxy; the
	// proxy resolves the control plane.
	dialHost, dialPort := host, port
	if c.Proxy != "" {
		pu, err := url.Parse(c.Proxy)
		if err == nil {
			dialHost, dialPort = pu.Hostname(), pu.Port()
		}
	}

	// DNS
	var ips []string
	if _, err := netip.ParseAddr(dialHost); err == nil {
		ips = []string{dialHost}
		add(Result{Step: StepDNS, OK: true, Message: fmt.Sprintf("DNS: not needed, %s is an address", dialHost)})
	} else {
		ctx1, cancel := context.WithTimeout(ctx, c.Timeout)
		ips, err = c.resolver().LookupHost(ctx1, dialHost)
		cancel()
		via := "the system resolver"
		if len(c.DNS) > 0 {
			via = strings.Join(c.DNS, ", ")
		}
		if err != nil || len(ips) == 0 {
			why := ""
			var de *net.DNSError
			if errors.As(err, &de) {
				switch {
				case de.IsNotFound:
					why = " (no such name)"
				case de.IsTimeout:
					why = " (no answer from the server)"
				}
			}
			add(Result{Step: StepDNS, Message: fmt.Sprintf("DNS: %s does not resolve via %s%s", dialHost, via, why)})
			return c.skip(out, progress, StepTCP, StepTLS, StepClock)
		}
		add(Result{Step: StepDNS, OK: true, Message: fmt.Sprintf("DNS: %s resolves to %s via %s", dialHost, ips[0], via)})
	}

	// TCP
	target := net.JoinHostPort(ips[0], dialPort)
	ctx2, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	conn, err := c.Dial(ctx2, "tcp", target)
	if err != nil {
		add(Result{Step: StepTCP, Message: fmt.Sprintf("TCP: cannot connect to %s: %s", target, shortErr(err))})
		return c.skip(out, progress, StepTLS, StepClock)
	}
	defer conn.Close()
	if c.Proxy != "" {
		conn.SetDeadline(time.Now().Add(c.Timeout))
		if err := connect(conn, net.JoinHostPort(host, port)); err != nil {
			add(Result{Step: StepTCP, Message: fmt.Sprintf("TCP: proxy %s refused the tunnel to %s:%s: %v", c.Proxy, host, port, err)})
			return c.skip(out, progress, StepTLS, StepClock)
		}
		add(Result{Step: StepTCP, OK: true, Message: fmt.Sprintf("TCP: connected to %s:%s through proxy %s", host, port, target)})
	} else {
		add(Result{Step: StepTCP, OK: true, Message: fmt.Sprintf("TCP: connected to %s", target)})
	}

	// TLS
	conn.SetDeadline(time.Now().Add(c.Timeout))
	tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: c.RootCAs, Time: c.Now, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx2); err != nil {
		msg := fmt.Sprintf("TLS: %s:%s is not trusted: %s", host, port, shortErr(err))
		var ce x509.CertificateInvalidError
		if errors.As(err, &ce) && ce.Reason == x509.Expired {
			msg = fmt.Sprintf("TLS: the certificate of %s is not valid at this appliance's time %s; check the clock and NTP servers", host, c.Now().UTC().Format(time.RFC3339))
		}
		add(Result{Step: StepTLS, Message: msg})
		return c.skip(out, progress, StepClock)
	}
	add(Result{Step: StepTLS, OK: true, Message: fmt.Sprintf("TLS: %s verified (%s)", host, tlsVersion(tc.ConnectionState().Version))})

	// Clock: compare with the control plane's Date header.
	now := c.Now()
	if now.Year() < 2025 {
		add(Result{Step: StepClock, Message: fmt.Sprintf("Clock: local time %s is wrong; check the NTP servers", now.UTC().Format(time.RFC3339))})
		return out
	}
	fmt.Fprintf(tc, "HEAD / HTTP/1.1\r\nHost: %s\r\nUser-Agent: vaultpam-console\r\nConnection: close\r\n\r\n", host)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		add(Result{Step: StepClock, Skipped: true, Message: "Clock: not checked (the control plane sent no HTTP answer)"})
		return out
	}
	resp.Body.Close()
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		add(Result{Step: StepClock, Skipped: true, Message: "Clock: not checked (the control plane sent no Date)"})
		return out
	}
	skew := now.Sub(d)
	if skew < 0 {
		skew = -skew
	}
	if skew > c.MaxSkew {
		add(Result{Step: StepClock, Message: fmt.Sprintf("Clock: local time differs from the control plane's by %s; check the NTP servers", skew.Round(time.Second))})
		return out
	}
	add(Result{Step: StepClock, OK: true, Message: "Clock: agrees with the control plane"})
	return out
}

func (c Config) resolver() *net.Resolver {
	if len(c.DNS) == 0 {
		return net.DefaultResolver
	}
	servers := c.DNS
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		var err error
		for _, s := range servers {
			var conn net.Conn
			conn, err = d.DialContext(ctx, network, net.JoinHostPort(s, "53"))
			if err == nil {
				return conn, nil
			}
		}
		return nil, err
	}}
}

func (c Config) skip(out []Result, progress func(Result), steps ...string) []Result {
	for _, s := range steps {
		r := Result{Step: s, Skipped: true, Message: s + ": not checked"}
		out = append(out, r)
		if progress != nil {
			progress(r)
		}
	}
	return out
}

func connect(conn net.Conn, target string) error {
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// shortErr drops the "dial tcp …:" preamble the net package adds.
func shortErr(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "connect") {
		s = s[i+2:]
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(s, "i/o timeout") {
		return "no answer (timed out)"
	}
	return s
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLS 1.3"
	case tls.VersionTLS12:
		return "TLS 1.2"
	}
	return fmt.Sprintf("TLS %#x", v)
}
