// Package diagnose checks the way from this machine to the control plane,
// one layer at a time — DNS, TCP (directly to every address, or through
// the HTTP proxy), TLS — and says at which layer it breaks and what to do.
// `vaultpam-connector diagnose` prints it; the support bundle carries it.
// (The console has diagnostics of its own for the network it configures;
// these are the connector's view, with its configuration.)
package diagnose

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/tlsreason"
	"github.com/vaultpam/appliance/connector/tunnel"
)

// Options say what to check. URL is required.
type Options struct {
	URL     string         // control_plane_url, https://HOST[:PORT]
	RootCAs *x509.CertPool // nil means the system roots
	Proxy   *url.URL       // proxy_url, nil for none
	// Resolver looks up the control plane (and the proxy); nil means
	// net.DefaultResolver. Dial opens TCP connections; nil means a
	// net.Dialer.
	Resolver *net.Resolver
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	Timeout  time.Duration // per check; 0 means 10 s
	Now      func() time.Time
}

// Check is one step's result.
type Check struct {
	Name   string `json:"name"` // dns, tcp, tls
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Hint   string `json:"hint,omitempty"`
}

// Run runs the checks in order; a failed layer ends the run (the next
// could only fail the same way). It never returns an empty list.
func Run(ctx context.Context, o Options) []Check {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	u, err := url.Parse(o.URL)
	if err != nil || u.Hostname() == "" {
		return []Check{{Name: "config", Detail: fmt.Sprintf("control_plane_url %q is not an https://HOST[:PORT] URL", o.URL), Hint: "fix control_plane_url"}}
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	address := net.JoinHostPort(host, port)
	var out []Check

	// DNS: the control plane's name, or the proxy's (which resolves the
	// control plane itself).
	lookup := host
	if o.Proxy != nil {
		lookup = o.Proxy.Hostname()
	}
	var addrs []string
	if ip := net.ParseIP(lookup); ip != nil {
		addrs = []string{ip.String()}
		out = append(out, Check{Name: "dns", OK: true, Detail: lookup + " is an address: nothing to look up"})
	} else {
		lctx, cancel := context.WithTimeout(ctx, o.Timeout)
		ips, err := o.Resolver.LookupIPAddr(lctx, lookup)
		cancel()
		if err != nil || len(ips) == 0 {
			return append(out, Check{Name: "dns", Detail: fmt.Sprintf("%s does not resolve: %v", lookup, err),
				Hint: "check the DNS servers (/etc/resolv.conf, the console's network settings) and the name in " + which(o)})
		}
		for _, ip := range ips {
			addrs = append(addrs, ip.IP.String())
		}
		out = append(out, Check{Name: "dns", OK: true, Detail: lookup + " → " + strings.Join(addrs, ", ")})
	}

	// TCP: every address, so a broken IPv6 or IPv4 path shows.
	tcpPort := port
	if o.Proxy != nil {
		tcpPort = o.Proxy.Port()
		if tcpPort == "" {
			tcpPort = "80"
		}
	}
	var good net.Conn
	var lines []string
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, o.Timeout)
		start := time.Now()
		c, err := o.Dial(dctx, "tcp", net.JoinHostPort(a, tcpPort))
		if err == nil && o.Proxy != nil {
			if err = tunnel.ConnectThrough(dctx, c, address, o.Proxy.User); err != nil {
				c.Close()
			}
		}
		cancel()
		if err != nil {
			lines = append(lines, fmt.Sprintf("%s failed: %v", net.JoinHostPort(a, tcpPort), err))
			continue
		}
		lines = append(lines, fmt.Sprintf("%s ok (%s)", net.JoinHostPort(a, tcpPort), time.Since(start).Round(time.Millisecond)))
		if good == nil {
			good = c
		} else {
			c.Close()
		}
	}
	what := "TCP to " + address
	if o.Proxy != nil {
		what = "TCP to the proxy " + o.Proxy.Host + ", CONNECT " + address
	}
	if good == nil {
		return append(out, Check{Name: "tcp", Detail: what + ": " + strings.Join(lines, "; "),
			Hint: "a firewall may block outbound TCP " + tcpPort + ", or the address is wrong; the tunnel needs only this one outbound connection"})
	}
	out = append(out, Check{Name: "tcp", OK: true, Detail: what + ": " + strings.Join(lines, "; ")})
	defer good.Close()

	// TLS: the control plane's certificate, as the tunnel will check it.
	tc := tls.Client(good, &tls.Config{ServerName: host, RootCAs: o.RootCAs, MinVersion: tls.VersionTLS13,
		NextProtos: []string{protocol.ALPNHTTP}, Time: o.Now})
	hctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		e, _ := tlsreason.Explain(err, address, o.Now())
		c := Check{Name: "tls", Detail: e.Reason, Hint: e.Hint}
		if c.Detail == "" {
			c.Detail = err.Error()
		}
		return append(out, c)
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	return append(out, Check{Name: "tls", OK: true, Detail: fmt.Sprintf("TLS 1.3 with %s, certificate %q from %q, valid until %s",
		address, leaf.Subject.CommonName, leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))})
}

func which(o Options) string {
	if o.Proxy != nil {
		return "proxy_url"
	}
	return "control_plane_url"
}

// OK reports whether every check passed.
func OK(cs []Check) bool {
	for _, c := range cs {
		if !c.OK {
			return false
		}
	}
	return len(cs) > 0
}

// Write prints the checks for people, one per line, with the hints.
func Write(w io.Writer, cs []Check) {
	for _, c := range cs {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s %-4s %s\n", mark, c.Name, c.Detail)
		if c.Hint != "" {
			fmt.Fprintf(w, "          hint: %s\n", c.Hint)
		}
	}
}

// JSON returns the checks as JSON.
func JSON(cs []Check) []byte {
	b, _ := json.MarshalIndent(cs, "", "  ") // plain strings and bools: cannot fail
	return append(b, '\n')
}
