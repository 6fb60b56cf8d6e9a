package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
)

// TunnelLink returns a LinkFactory running a tunnel.Client built from base
// (address, roots, proxy, allowed targets, name, version, logger filled in
// by the caller); the certificate and renewals come from the agent.
func TunnelLink(base tunnel.Config) LinkFactory {
	return func(host LinkHost, onStatus func(LinkStatus)) (Link, error) {
		cfg := base
		cfg.Certificate = func() (*tls.Certificate, error) {
			id := host.Identity()
			if id == nil {
				return nil, errors.New("no identity")
			}
			return id.TLSCertificate(), nil
		}
		cfg.Renewed = host.Renewed
		cfg.OnStatus = func(s tunnel.Status) {
			if ls, ok := linkStatus(s); ok {
				onStatus(ls)
			}
		}
		c, err := tunnel.New(cfg)
		if err != nil {
			return nil, err
		}
		return &tunnelLink{c}, nil
	}
}

type tunnelLink struct{ c *tunnel.Client }

func (l *tunnelLink) Run(ctx context.Context) error {
	err := l.c.Run(ctx)
	if errors.Is(err, tunnel.ErrNeedsRecovery) {
		return fmt.Errorf("%w: %v", ErrLinkRefused, err)
	}
	return err
}

func (l *tunnelLink) Shutdown(ctx context.Context, reason protocol.Reason) error {
	return l.c.ShutdownFor(ctx, reason)
}

func (l *tunnelLink) SendStream(ctx context.Context, h protocol.StreamHeader, body io.Reader) (string, error) {
	return l.c.SendStream(ctx, h, body)
}

func (l *tunnelLink) Status() LinkStatus {
	ls, _ := linkStatus(l.c.Status())
	return ls
}

// linkStatus maps the tunnel's status; ok is false for states the agent
// handles itself (needs recovery and draining come from Run and Shutdown).
func linkStatus(s tunnel.Status) (LinkStatus, bool) {
	ls := LinkStatus{State: s.State, Reason: s.Reason, LastHeartbeat: s.LastHeartbeat, HeartbeatInterval: s.HeartbeatInterval, RTT: s.RTT, ActiveSessions: s.ActiveSessions,
		ClockOffset: s.ClockOffset, ClockMeasured: s.ClockMeasured, SupportRecipient: s.SupportRecipient}
	switch s.State {
	case state.Connecting, state.Online, state.Reconnecting:
		return ls, true
	}
	return ls, false
}
