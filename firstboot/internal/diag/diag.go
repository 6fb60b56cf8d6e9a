// Package diag checks that the appliance can reach its control plane, one
// check at a time — DNS, TCP, TLS, clock — and names the check that fails in
// words an operator can act on ("DNS: cp.example.com does not resolve via
// 192.0.2.53").
//
// The checks are a list (Checks); each is one function that builds on what
// the earlier ones found (addresses, the connection), kept in a Probe. Run
// runs the list; the console's apply pipeline runs the checks one by one as
// steps of its own.
package diag

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Check names.
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
	Timeout         time.Duration // per check; 0 = 5 s
	// Dial opens TCP connections; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxSkew is how far the local clock may be from the control plane's; 0 = 5 min.
	MaxSkew time.Duration
}

func (c *Config) defaults() {
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
}

// Result is the outcome of one check.
type Result struct {
	Step    string
	OK      bool
	Skipped bool
	Message string // "DNS: cp.example.com resolves to 192.0.2.1 via 192.0.2.53", or what failed
	// Untrusted: the TLS check failed because no trusted CA issued the
	// chain; Chain is what the peer presented (leaf first), so the
	// operator can compare its root's fingerprint and trust it.
	Untrusted bool
	Chain     []*x509.Certificate
}

// Root is the top of the presented chain: the certificate to trust (the
// root, when the peer sends it; else the topmost intermediate it sent).
func (r Result) Root() *x509.Certificate {
	if len(r.Chain) == 0 {
		return nil
	}
	return r.Chain[len(r.Chain)-1]
}

// Failed reports whether r is a failure (neither passed nor skipped).
func (r Result) Failed() bool { return !r.OK && !r.Skipped }

// Failed returns the first failed result, if any.
func Failed(rs []Result) (Result, bool) {
	for _, r := range rs {
		if r.Failed() {
			return r, true
		}
	}
	return Result{}, false
}

// Check is one named check. Run needs the checks before it in Checks to
// have passed on the same Probe; without them it reports itself skipped.
type Check struct {
	Name string
	Run  func(ctx context.Context, p *Probe) Result
}

// Checks returns the checks in the order they must run.
func Checks() []Check {
	return []Check{
		{StepDNS, checkDNS},
		{StepTCP, checkTCP},
		{StepTLS, checkTLS},
		{StepClock, checkClock},
	}
}

// Probe is what one run of the checks has found so far: the addresses the
// control plane (or the proxy) resolved to, then the connection. It is not
// safe for concurrent use. Close releases the connection.
type Probe struct {
	c                  Config
	host, port         string // the control plane
	dialHost, dialPort string // what the appliance connects to: the control plane or the proxy
	badURL             bool
	ips                []string
	conn               net.Conn
	tls                *tls.Conn
}

// NewProbe starts a run of the checks with c.
func NewProbe(c Config) *Probe {
	c.defaults()
	p := &Probe{c: c}
	u, err := url.Parse(c.ControlPlaneURL)
	if err != nil || u.Hostname() == "" {
		p.badURL = true
		return p
	}
	p.host, p.port = u.Hostname(), u.Port()
	if p.port == "" {
		p.port = "443"
	}
	// Through a proxy, the appliance resolves and reaches the proxy; the
	// proxy resolves the control plane.
	p.dialHost, p.dialPort = p.host, p.port
	if c.Proxy != "" {
		if pu, err := url.Parse(c.Proxy); err == nil {
			p.dialHost, p.dialPort = pu.Hostname(), pu.Port()
		}
	}
	return p
}

// Close closes the connection the checks opened, if any.
func (p *Probe) Close() {
	if p.conn != nil {
		p.conn.Close()
	}
}

// Run runs every check in order on a new Probe, calling progress (if not
// nil) after each, and stops at the first failure: the later checks are
// reported as skipped.
func Run(ctx context.Context, c Config, progress func(Result)) []Result {
	p := NewProbe(c)
	defer p.Close()
	var out []Result
	report := func(r Result) {
		out = append(out, r)
		if progress != nil {
			progress(r)
		}
	}
	failed := false
	for _, ch := range Checks() {
		if failed {
			report(notChecked(ch.Name))
			continue
		}
		r := ch.Run(ctx, p)
		report(r)
		failed = r.Failed()
	}
	return out
}

func notChecked(name string) Result {
	return Result{Step: name, Skipped: true, Message: name + ": not checked"}
}

func fail(step, format string, args ...any) Result {
	return Result{Step: step, Message: fmt.Sprintf(step+": "+format, args...)}
}

func pass(step, format string, args ...any) Result {
	return Result{Step: step, OK: true, Message: fmt.Sprintf(step+": "+format, args...)}
}
