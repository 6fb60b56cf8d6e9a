// Package tlsreason explains a failed TLS connection to the control plane
// in words an operator can act on, and says whose fault it is.
//
// None of these failures is a verdict on the connector's identity: a
// certificate the connector cannot verify (expired, not yet valid, issued
// by an unknown CA, for another name) is the control plane's, the
// clock's or a TLS-inspecting proxy's problem, and a TLS alert may come
// from a proxy that terminates TLS. Only the control plane's answer at the
// application level, over a connection whose certificate the connector
// verified, may refuse the identity (see package tunnel and package
// enrol). Callers keep retrying with backoff and show the reason.
package tlsreason

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Explanation is a failure explained: Reason says what is wrong (for the
// status and the logs), Hint what the operator does next.
type Explanation struct {
	Reason string
	Hint   string
}

// ProxyHint is the advice when a TLS-inspecting proxy may be in between.
const ProxyHint = "a TLS-inspecting proxy cannot pass the connector's client certificate through: exempt the control plane's address from inspection"

// Explain explains err, a failure to connect to the control plane at
// address (host:port), using now as this machine's clock. ok is false
// when err is not a TLS failure (a refused or timed-out connection, DNS…).
func Explain(err error, address string, now time.Time) (e Explanation, ok bool) {
	if err == nil {
		return Explanation{}, false
	}
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var rec tls.RecordHeaderError
	var op *net.OpError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && invalid.Cert != nil:
		c := invalid.Cert
		if now.Before(c.NotBefore) {
			return Explanation{
				Reason: fmt.Sprintf("control plane certificate %s is not valid before %s, and this machine's clock says %s; check the clock (NTP)",
					subject(c), stamp(c.NotBefore), stamp(now)),
				Hint: "set the clock right (NTP); if it is right, the control plane's certificate was issued for the future; the connector retries by itself",
			}, true
		}
		return Explanation{
			Reason: fmt.Sprintf("control plane certificate %s expired at %s (this machine's clock says %s); check the clock (NTP)",
				subject(c), stamp(c.NotAfter), stamp(now)),
			Hint: "check the clock (NTP); if it is right, the control plane's certificate must be renewed; the connector retries by itself",
		}, true
	case errors.As(err, &invalid):
		return Explanation{
			Reason: fmt.Sprintf("control plane certificate %s is not valid: %s", subject(invalid.Cert), strings.TrimPrefix(invalid.Error(), "x509: ")),
			Hint:   "the control plane's certificate chain must be fixed; the connector retries by itself",
		}, true
	case errors.As(err, &unknown):
		issuer := "an unnamed issuer"
		if unknown.Cert != nil && unknown.Cert.Issuer.String() != "" {
			issuer = fmt.Sprintf("%q", unknown.Cert.Issuer.String())
		}
		return Explanation{
			Reason: fmt.Sprintf("control plane certificate %s is issued by %s, which this connector does not trust (control_plane_ca_file, or the system roots when it is empty); if a TLS-inspecting proxy is in between, trust its CA",
				subject(unknown.Cert), issuer),
			Hint: "check control_plane_ca_file; behind a TLS-inspecting proxy, trusting its CA there lets enrolment through, and the tunnel needs the control plane's address exempted from inspection (the client certificate cannot pass through a proxy)",
		}, true
	case errors.As(err, &host):
		return Explanation{
			Reason: fmt.Sprintf("control plane certificate is for %s, not for %s", names(host.Certificate), host.Host),
			Hint:   "check the host in control_plane_url: it must be a name (or IP) the control plane's certificate carries",
		}, true
	case errors.As(err, &rec):
		return Explanation{
			Reason: fmt.Sprintf("%s does not answer with TLS", address),
			Hint:   "check the port in control_plane_url, and proxy_url if a proxy is in between",
		}, true
	case errors.As(err, &op) && op.Op == "remote error" && strings.HasSuffix(op.Err.Error(), "protocol version not supported"),
		strings.Contains(err.Error(), "unsupported protocol version"):
		return Explanation{
			Reason: fmt.Sprintf("%s does not offer TLS 1.3, which the connector requires", address),
			Hint:   "check control_plane_url; a proxy or firewall in between may downgrade TLS: exempt the control plane's address",
		}, true
	case errors.As(err, &op) && op.Op == "remote error":
		alert := strings.TrimPrefix(op.Err.Error(), "tls: ")
		if clientCertAlert(alert) {
			return Explanation{
				Reason: fmt.Sprintf("the TLS peer refused the client certificate (TLS alert %q); %s", alert, ProxyHint),
				Hint:   "the control plane itself answers at the application level, never with a TLS alert: look for a TLS-inspecting proxy or firewall between the connector and " + address,
			}, true
		}
		return Explanation{
			Reason: fmt.Sprintf("the TLS peer at %s ended the handshake (TLS alert %q)", address, alert),
			Hint:   "check that control_plane_url points at the control plane, and any proxy or firewall in between",
		}, true
	}
	return Explanation{}, false
}

// Error is a TLS failure explained; it wraps the original error.
type Error struct {
	Explanation
	Err error
}

func (e *Error) Error() string { return e.Reason }
func (e *Error) Unwrap() error { return e.Err }

// Wrap returns err explained as an *Error, or err unchanged when it is
// not a TLS failure.
func Wrap(err error, address string, now time.Time) error {
	if e, ok := Explain(err, address, now); ok {
		return &Error{Explanation: e, Err: err}
	}
	return err
}

// clientCertAlert reports whether a TLS alert is about the client's
// certificate: what a server that checks client certificates at the TLS
// layer (a TLS-inspecting proxy, or a misconfigured front) sends.
func clientCertAlert(alert string) bool {
	switch alert {
	case "bad certificate", "unsupported certificate", "revoked certificate", "expired certificate",
		"unknown certificate", "unknown certificate authority", "certificate required", "access denied":
		return true
	}
	return false
}

func subject(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	if c.Subject.CommonName != "" {
		return fmt.Sprintf("%q", c.Subject.CommonName)
	}
	return fmt.Sprintf("%q", c.Subject.String())
}

func names(c *x509.Certificate) string {
	if c == nil {
		return "no names"
	}
	var ns []string
	ns = append(ns, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		ns = append(ns, ip.String())
	}
	if len(ns) == 0 {
		return "no names (no subject alternative names)"
	}
	if len(ns) > 10 {
		ns = append(ns[:10], fmt.Sprintf("… %d more", len(ns)-10))
	}
	return strings.Join(ns, ", ")
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
