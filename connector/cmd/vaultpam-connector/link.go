package main

import (
	"crypto/x509"
	"log/slog"
	"net/url"

	"github.com/vaultpam/appliance/connector/agent"
	"github.com/vaultpam/appliance/connector/config"
)

// newLinkFactory wires the tunnel into the agent; nil until the tunnel
// library is wired (the agent then stops at connecting).
func newLinkFactory(cfg config.Config, roots *x509.CertPool, proxy *url.URL, log *slog.Logger, ag func() *agent.Agent) agent.LinkFactory {
	return nil
}
