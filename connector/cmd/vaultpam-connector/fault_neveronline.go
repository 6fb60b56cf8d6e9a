//go:build vaultpam_fault_neveronline

package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/vaultpam/appliance/connector/agent"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
)

// faultNeverOnline is the status reason of the test build; the update tests
// look for it to know they run the build they meant.
const faultNeverOnline = "test build vaultpam_fault_neveronline: this connector never goes online"

// faultLink replaces the tunnel with one that never dials: a connector
// built with `make build GOTAGS=vaultpam_fault_neveronline` enrols and
// checks its identity like any other, then stays Offline (reconnecting)
// with faultNeverOnline as the reason. The update tests ship it as a new
// version whose health gate must fail, so the appliance rolls back.
// Release builds do not contain this file (fault_none.go).
func faultLink(_ agent.LinkFactory, log *slog.Logger) agent.LinkFactory {
	log.Warn(faultNeverOnline)
	return func(_ agent.LinkHost, onStatus func(agent.LinkStatus)) (agent.Link, error) {
		return &neverOnlineLink{onStatus: onStatus}, nil
	}
}

// neverOnlineLink is a Link that reports Reconnecting until it is stopped.
type neverOnlineLink struct {
	onStatus func(agent.LinkStatus)
}

func (l *neverOnlineLink) Status() agent.LinkStatus {
	return agent.LinkStatus{State: state.Reconnecting, Reason: faultNeverOnline}
}

func (l *neverOnlineLink) Run(ctx context.Context) error {
	l.onStatus(l.Status())
	<-ctx.Done()
	return ctx.Err()
}

func (l *neverOnlineLink) Shutdown(context.Context, protocol.Reason) error { return nil }

func (l *neverOnlineLink) SendStream(context.Context, protocol.StreamHeader, io.Reader) (string, error) {
	return "", tunnel.ErrTunnelDown
}
