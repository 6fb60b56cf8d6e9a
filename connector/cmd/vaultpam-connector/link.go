package main

import (
	"crypto/x509"
	"log/slog"
	"net"
	"net/url"

	"github.com/vaultpam/appliance/connector/agent"
	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/connector/updates"
)

// newLinkFactory wires the tunnel client into the agent with the
// configuration's address, roots, proxy and allow-list.
func newLinkFactory(cfg config.Config, roots *x509.CertPool, proxy *url.URL, log *slog.Logger, upd *updates.Manager, counters *tunnel.Counters) agent.LinkFactory {
	tc := tunnel.DefaultConfig()
	u, _ := url.Parse(cfg.ControlPlaneURL) // validated by config.Load
	tc.Address = u.Host
	if u.Port() == "" {
		tc.Address = net.JoinHostPort(u.Hostname(), "443")
	}
	tc.ServerName = u.Hostname()
	tc.RootCAs = roots
	tc.Proxy = proxy
	tc.AllowedTargets = cfg.AllowedTargets
	tc.Name, tc.Version = cfg.ConnectorName, version
	tc.Logger = log
	tc.OnUpdateOffer = upd.Offer
	tc.Image = upd.Report
	tc.Counters = counters
	return faultLink(agent.TunnelLink(tc), log) // fault_none.go: the identity in release builds
}
