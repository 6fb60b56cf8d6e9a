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
	"strings"
	"time"
)

// checkDNS resolves the name the appliance connects to (the control plane,
// or the proxy) through the configured servers.
func checkDNS(ctx context.Context, p *Probe) Result {
	if p.badURL {
		return Result{Step: StepDNS, Message: fmt.Sprintf("URL: %q is not a control plane URL", p.c.ControlPlaneURL)}
	}
	if _, err := netip.ParseAddr(p.dialHost); err == nil {
		p.ips = []string{p.dialHost}
		return pass(StepDNS, "not needed, %s is an address", p.dialHost)
	}
	ctx, cancel := context.WithTimeout(ctx, p.c.Timeout)
	ips, err := p.c.resolver().LookupHost(ctx, p.dialHost)
	cancel()
	via := "the system resolver"
	if len(p.c.DNS) > 0 {
		via = strings.Join(p.c.DNS, ", ")
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
		return fail(StepDNS, "%s does not resolve via %s%s", p.dialHost, via, why)
	}
	p.ips = ips
	return pass(StepDNS, "%s resolves to %s via %s", p.dialHost, ips[0], via)
}

// checkTCP connects to the first address found, and through the proxy to
// the control plane when one is set.
func checkTCP(ctx context.Context, p *Probe) Result {
	if len(p.ips) == 0 {
		return notChecked(StepTCP)
	}
	target := net.JoinHostPort(p.ips[0], p.dialPort)
	ctx, cancel := context.WithTimeout(ctx, p.c.Timeout)
	defer cancel()
	conn, err := p.c.Dial(ctx, "tcp", target)
	if err != nil {
		return fail(StepTCP, "cannot connect to %s: %s", target, shortErr(err))
	}
	if p.c.Proxy == "" {
		p.conn = conn
		return pass(StepTCP, "connected to %s", target)
	}
	conn.SetDeadline(time.Now().Add(p.c.Timeout))
	if err := connect(conn, net.JoinHostPort(p.host, p.port)); err != nil {
		conn.Close()
		return fail(StepTCP, "proxy %s refused the tunnel to %s:%s: %v", p.c.Proxy, p.host, p.port, err)
	}
	p.conn = conn
	return pass(StepTCP, "connected to %s:%s through proxy %s", p.host, p.port, target)
}

// checkTLS verifies the control plane's certificate over the connection.
// An expired (or not yet valid) certificate is reported as a clock problem.
func checkTLS(ctx context.Context, p *Probe) Result {
	if p.conn == nil {
		return notChecked(StepTLS)
	}
	p.conn.SetDeadline(time.Now().Add(p.c.Timeout))
	ctx, cancel := context.WithTimeout(ctx, p.c.Timeout)
	defer cancel()
	// Verified by hand (the same checks crypto/tls makes) so that the
	// chain the peer presented is at hand when it is not trusted: the
	// operator compares its root's fingerprint and may trust it.
	var chain []*x509.Certificate
	tc := tls.Client(p.conn, &tls.Config{ServerName: p.host, InsecureSkipVerify: true, Time: p.c.Now,
		NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			chain = cs.PeerCertificates
			if len(chain) == 0 {
				return errors.New("the server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: p.c.RootCAs, DNSName: p.host, CurrentTime: p.c.Now(), Intermediates: x509.NewCertPool()}
			for _, c := range chain[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := chain[0].Verify(opts)
			return err
		}})
	if err := tc.HandshakeContext(ctx); err != nil {
		var ce x509.CertificateInvalidError
		if errors.As(err, &ce) && ce.Reason == x509.Expired {
			return fail(StepTLS, "the certificate of %s is not valid at this appliance's time %s; check the clock and NTP servers",
				p.host, p.c.Now().UTC().Format(time.RFC3339))
		}
		r := fail(StepTLS, "%s:%s is not trusted: %s", p.host, p.port, shortErr(err))
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) && len(chain) > 0 {
			r.Chain, r.Untrusted = chain, true
			r.Message = fmt.Sprintf("TLS: %s:%s is not trusted: its chain ends at %q, a CA this appliance does not trust", p.host, p.port, chain[len(chain)-1].Subject.String())
		}
		return r
	}
	p.tls = tc
	return pass(StepTLS, "%s verified (%s)", p.host, tlsVersion(tc.ConnectionState().Version))
}

// checkClock compares the local time with the control plane's HTTP Date.
func checkClock(ctx context.Context, p *Probe) Result {
	if p.tls == nil {
		return notChecked(StepClock)
	}
	now := p.c.Now()
	if now.Year() < 2025 {
		return fail(StepClock, "local time %s is wrong; check the NTP servers", now.UTC().Format(time.RFC3339))
	}
	p.conn.SetDeadline(time.Now().Add(p.c.Timeout))
	fmt.Fprintf(p.tls, "HEAD / HTTP/1.1\r\nHost: %s\r\nUser-Agent: vaultpam-console\r\nConnection: close\r\n\r\n", p.host)
	resp, err := http.ReadResponse(bufio.NewReader(p.tls), nil)
	if err != nil {
		return Result{Step: StepClock, Skipped: true, Message: "Clock: not checked (the control plane sent no HTTP answer)"}
	}
	resp.Body.Close()
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return Result{Step: StepClock, Skipped: true, Message: "Clock: not checked (the control plane sent no Date)"}
	}
	skew := now.Sub(d)
	if skew < 0 {
		skew = -skew
	}
	if skew > p.c.MaxSkew {
		return fail(StepClock, "local time differs from the control plane's by %s; check the NTP servers", skew.Round(time.Second))
	}
	return pass(StepClock, "agrees with the control plane")
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

// connect asks an HTTP proxy on conn for a tunnel to target.
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
