package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
)

// Updates is what the agent needs from the image updates (*updates.Manager
// implements it).
type Updates interface {
	// Image is the appliance's image status, nil where there is none.
	Image() *localapi.Image
	// Install and Rollback forward the console's requests to the updater.
	Install(ctx context.Context, r localapi.InstallRequest) error
	Rollback(ctx context.Context, r localapi.RollbackRequest) error
}

// Drain limits for a reboot into an update.
const (
	defaultRebootGrace = time.Minute
	maxRebootGrace     = 15 * time.Minute
)

// Drain implements localapi.Drainer: the updater is about to reboot into
// an update. The connector stops taking sessions (yamux GoAway), lets the
// open ones run for the grace period, ends the rest with the reason
// (update_reboot), closes the tunnel and stays Draining until it is
// stopped. It returns when the drain is over.
func (a *Agent) Drain(ctx context.Context, r localapi.DrainRequest) error {
	reason := protocol.Reason(r.Reason)
	if reason != protocol.ReasonUpdateReboot {
		return &localapi.Error{Code: "bad_request", Message: fmt.Sprintf("drain reason %q: only %q is accepted", r.Reason, protocol.ReasonUpdateReboot)}
	}
	grace := time.Duration(r.Grace)
	if grace <= 0 {
		grace = defaultRebootGrace
	}
	grace = min(grace, maxRebootGrace)
	a.mu.Lock()
	a.rebooting = true
	cur := a.cur
	a.mu.Unlock()
	a.transition(state.Draining, fmt.Sprintf("rebooting into an image update: no new sessions, open ones get up to %s", grace), "")
	if cur == nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := cur.Shutdown(dctx, reason); err != nil {
		a.log.Info("drain for the update's reboot ended with sessions cut", "err", err)
	}
	return nil
}

// InstallUpdate implements localapi.ImageUpdater.
func (a *Agent) InstallUpdate(ctx context.Context, r localapi.InstallRequest) error {
	if a.opt.Updates == nil {
		return &localapi.Error{Status: 501, Code: localapi.UpdateCodeNothingHere, Message: "this connector does not run on the appliance: there is no image to update"}
	}
	return a.opt.Updates.Install(ctx, r)
}

// RollbackUpdate implements localapi.ImageUpdater.
func (a *Agent) RollbackUpdate(ctx context.Context, r localapi.RollbackRequest) error {
	if a.opt.Updates == nil {
		return &localapi.Error{Status: 501, Code: localapi.UpdateCodeNothingHere, Message: "this connector does not run on the appliance: there is no image to roll back"}
	}
	return a.opt.Updates.Rollback(ctx, r)
}

func (a *Agent) isRebooting() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rebooting
}
