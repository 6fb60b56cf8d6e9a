package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/vaultpam/appliance/connector/allowlist"
	"github.com/vaultpam/appliance/connector/backoff"
	"github.com/vaultpam/appliance/connector/protocol"
)

// Config is what a Client needs. Build it from DefaultConfig, fill in the
// identity and the address, and check it with Validate.
type Config struct {
	// Address is the control plane's host:port (from control_plane_url).
	Address string
	// ServerName is the name the control plane's certificate must carry;
	// empty means the host part of Address.
	ServerName string
	// RootCAs verifies the control plane's certificate; nil means the
	// system roots.
	RootCAs *x509.CertPool
	// Certificate returns the connector's current client certificate (with
	// its private key and Leaf set). It is called on every connection
	// attempt, so a renewed certificate is picked up on the next dial.
	// Required.
	Certificate func() (*tls.Certificate, error)
	// Renewed receives a renewed certificate chain (DER, leaf first) for the
	// same key; the daemon stores it and returns it from Certificate from
	// then on. An error is logged and renewal is retried later. Nil
	// disables renewal.
	Renewed func(chain [][]byte) error

	// Proxy, when set, is an http:// URL of an HTTP CONNECT proxy the
	// tunnel goes through (config proxy_url). Userinfo in the URL is sent
	// as Proxy-Authorization basic credentials and never logged.
	Proxy *url.URL

	// AllowedTargets is the allow-list of targets (config allowed_targets,
	// parsed by package allowlist): CIDRs ("10.20.0.0/16"), single IPs,
	// and host:port entries ("db.internal:5432", "10.0.0.5:22"). Empty
	// allows every target outside the default deny set (loopback,
	// link-local, multicast, broadcast, the appliance's own addresses).
	AllowedTargets []string

	// Name and Version are sent in the hello and heartbeats.
	Name    string
	Version string

	// DialTimeout bounds dialling the control plane (TCP, proxy, TLS) and
	// dialling a target.
	DialTimeout time.Duration
	// Backoff shapes the waits between connection attempts.
	Backoff backoff.Backoff
	// RenewAfter is the fraction of the certificate's lifetime after which
	// the connector asks for a new one (0.5 = half its lifetime); renewal
	// is retried every heartbeat until it succeeds.
	RenewAfter float64
	// DefaultHeartbeatInterval is used until the control plane sets one.
	DefaultHeartbeatInterval time.Duration

	// DialControlPlane dials TCP to the control plane or the proxy; nil
	// means a net.Dialer. DialTarget dials session targets; nil means a
	// net.Dialer. Resolver resolves target names; nil means
	// net.DefaultResolver.
	DialControlPlane func(ctx context.Context, network, addr string) (net.Conn, error)
	DialTarget       func(ctx context.Context, network, addr string) (net.Conn, error)
	Resolver         Resolver
	// LocalAddrs returns the appliance's own addresses, which sessions may
	// not reach unless allowed_targets names them (package allowlist,
	// the default deny set); it is called for every session. Nil means
	// allowlist.InterfaceAddrs.
	LocalAddrs allowlist.LocalAddrs

	// OnUpdateOffer receives the image updates the control plane offers
	// (each offer again after every reconnect while it stands), from its
	// own goroutine. Nil ignores them.
	OnUpdateOffer func(protocol.UpdateOffer)
	// Image returns the running image version and the latest update's
	// state for the heartbeats; nil (or "" and nil) where there is none.
	Image func() (string, *protocol.UpdateReport)

	// Counters receives the tunnel's cumulative counters (sessions, bytes,
	// heartbeats, round trips); share one between the Clients of a process
	// so totals survive reconnects. Nil gives the Client counters of its
	// own.
	Counters *Counters

	// OnStatus is called with the new status on every state change, from
	// the Client's goroutine; it must not block for long. May be nil.
	OnStatus func(Status)

	// Logger receives operational messages (never secrets); nil discards.
	Logger *slog.Logger
	// Now and Rand are the clock and the randomness for backoff jitter
	// and session bookkeeping; nil means time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// Resolver resolves a target host name to IP addresses.
type Resolver = allowlist.Resolver

// DefaultConfig returns a Config with every setting that has a sensible
// default filled in; Address and Certificate are still empty.
func DefaultConfig() Config {
	return Config{
		DialTimeout:              10 * time.Second,
		Backoff:                  backoff.Default(),
		RenewAfter:               0.5,
		DefaultHeartbeatInterval: 10 * time.Second,
	}
}

// Validate reports every problem with c, joined.
func (c *Config) Validate() error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, errors.New("control plane address is empty"))
	} else if _, _, err := net.SplitHostPort(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("control plane address %q: want host:port", c.Address))
	}
	if c.Certificate == nil {
		errs = append(errs, errors.New("no client certificate source (Certificate is nil)"))
	}
	if c.Proxy != nil && c.Proxy.Scheme != "http" {
		errs = append(errs, fmt.Errorf("proxy scheme %q: only http:// CONNECT proxies are supported", c.Proxy.Scheme))
	}
	if c.Proxy != nil && c.Proxy.Host == "" {
		errs = append(errs, errors.New("proxy URL has no host"))
	}
	if _, err := allowlist.Parse(c.AllowedTargets); err != nil {
		errs = append(errs, fmt.Errorf("allowed_targets: %w", err))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, errors.New("dial timeout must be positive"))
	}
	if err := c.Backoff.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RenewAfter <= 0 || c.RenewAfter >= 1 {
		errs = append(errs, fmt.Errorf("renew-after fraction %v: want between 0 and 1", c.RenewAfter))
	}
	if c.DefaultHeartbeatInterval <= 0 {
		errs = append(errs, errors.New("default heartbeat interval must be positive"))
	}
	return errors.Join(errs...)
}
