package agent

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
)

// LinkStatus is what the tunnel reports to the agent.
type LinkStatus struct {
	State             state.State // Connecting, Online or Reconnecting
	Reason            string
	LastHeartbeat     time.Time
	HeartbeatInterval time.Duration
	RTT               time.Duration
	ActiveSessions    int
	// ClockOffset is the control plane's clock minus ours; ClockMeasured
	// is when it was estimated (zero: never).
	ClockOffset   time.Duration
	ClockMeasured time.Time
	// SupportRecipient is the control plane's support-bundle key ("" when
	// it announced none).
	SupportRecipient string
}

// Link is a running tunnel (the tunnel.Client behind an adapter).
type Link interface {
	// Status is the tunnel's live status (heartbeat, RTT, sessions).
	Status() LinkStatus
	// Run keeps the tunnel up until ctx ends or Shutdown finishes. An
	// error wrapping ErrLinkRefused means the identity is refused for good.
	Run(ctx context.Context) error
	// Shutdown stops new sessions and waits for the open ones until ctx
	// ends; the sessions still open then end with reason.
	Shutdown(ctx context.Context, reason protocol.Reason) error
	// SendStream hands h.Size bytes of body to the control plane on a
	// typed stream and returns its ID for them (tunnel.Client.SendStream).
	SendStream(ctx context.Context, h protocol.StreamHeader, body io.Reader) (string, error)
}

// LinkHost is what a Link needs from the agent: the current identity
// (re-read on every dial, so a renewed certificate is used) and a place to
// store a renewed certificate chain.
type LinkHost interface {
	Identity() *identity.Identity
	Renewed(chain [][]byte) error
}

// LinkFactory makes a Link for host that reports state changes to onStatus.
type LinkFactory func(host LinkHost, onStatus func(LinkStatus)) (Link, error)

// ErrLinkRefused is wrapped by Link.Run when the control plane refuses the
// identity (revoked, unknown, expired).
var ErrLinkRefused = errors.New("control plane refused the connector identity")

// Run drives the state machine until ctx ends, then drains (config
// drain_timeout) and returns nil. It sends READY=1 once started.
func (a *Agent) Run(ctx context.Context) error {
	a.notify("READY=1")
	a.notify("STATUS=" + statusLine(a.State(), a.Status().Reason))
	if p := a.pending; p != nil {
		a.pending = nil
		a.finishPending(ctx, p, "")
	}
	if tok := a.opt.Token; tok != "" {
		a.opt.Token = ""
		switch st := a.State(); st {
		case state.AwaitingToken, state.NeedsRecovery:
			// The same checks as a token from the console; a refused one is
			// reported in the status and never retried.
			if err := a.SubmitToken(ctx, tok); err != nil {
				var le *localapi.Error
				if errors.As(err, &le) {
					a.transition(a.State(), "token given at start refused: "+le.Message, le.Hint)
				}
			}
		default:
			a.log.Info("the resumed enrolment gave the connector its identity; the token given at start is not used", "state", st.String())
		}
	}
	for {
		if ctx.Err() != nil {
			a.transition(state.Draining, "shutting down", "")
			a.notify("STOPPING=1")
			return nil
		}
		switch a.State() {
		case state.AwaitingToken, state.NeedsRecovery, state.Enrolling:
			select {
			case tok := <-a.tokens:
				a.enrolWith(ctx, tok)
			case <-ctx.Done():
			}
		case state.Connecting, state.Reconnecting, state.Online:
			a.connect(ctx)
		case state.Draining:
			if a.isRebooting() {
				// Drained for an update's reboot: wait to be stopped, do
				// not exit (systemd would start a fresh connector).
				<-ctx.Done()
			}
			return nil
		}
	}
}

// wait sleeps d or until ctx ends; it reports whether ctx is still alive.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (a *Agent) burn(token, code string) {
	a.mu.Lock()
	a.burnt[sha256.Sum256([]byte(token))] = code
	a.mu.Unlock()
}

// connect checks the identity with the control plane, then runs the
// tunnel until it fails for good or ctx ends (then it drains).
func (a *Agent) connect(ctx context.Context) {
	select { // a stale signal: the identity read below is the current one
	case <-a.relink:
	default:
	}
	var id *identity.Identity
	for n := 0; ; n++ {
		id = a.Identity() // a re-enrolment may replace it meanwhile
		_, err := a.opt.Enroller.WhoAmI(ctx, id)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		var ee *enrol.Error
		if enrol.RefusesIdentity(err) && errors.As(err, &ee) {
			a.transition(state.NeedsRecovery, fmt.Sprintf("control plane refused the identity of %s (%s): %s", id.ConnectorID, ee.Code, ee.Message), ee.Hint())
			return
		}
		d := a.opt.RetryDelay(n)
		why, hint := retryReason(err)
		a.transition(state.Reconnecting, fmt.Sprintf("%s; retrying in %s", why, d.Round(time.Millisecond)), hint)
		if !wait(ctx, d) {
			return
		}
	}
	if a.opt.Link == nil {
		a.transition(state.Connecting, "identity accepted by the control plane; no tunnel in this build", "")
		select {
		case <-ctx.Done():
		case <-a.relink:
		}
		return
	}
	link, err := a.opt.Link(a, a.onLink)
	if err != nil {
		a.transition(state.NeedsRecovery, "cannot start the tunnel: "+err.Error(), "check the configuration, then restart the connector")
		return
	}
	a.mu.Lock()
	a.cur = link
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.cur = nil
		a.mu.Unlock()
	}()
	linkCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- link.Run(linkCtx) }()
	select {
	case <-a.relink:
		// A re-enrolment replaced the identity: start over with it.
		cancel()
		<-done
		a.transition(state.Connecting, "reconnecting with the new identity", "")
	case err := <-done:
		if a.isRebooting() {
			return // Drain closed the tunnel; stay Draining
		}
		if errors.Is(err, ErrLinkRefused) {
			a.transition(state.NeedsRecovery, err.Error(), enrol.Hint(protocol.CodeCertRevoked))
			return
		}
		a.transition(state.Reconnecting, fmt.Sprintf("tunnel stopped: %v", err), "")
	case <-ctx.Done():
		grace := a.opt.Config.Drain()
		a.transition(state.Draining, fmt.Sprintf("shutting down: no new sessions, waiting up to %s for open ones", grace), "")
		a.notify("STOPPING=1")
		sctx, scancel := context.WithTimeout(context.Background(), grace)
		if err := link.Shutdown(sctx, protocol.ReasonDraining); err != nil {
			a.log.Warn("drain ended", "err", err)
		}
		scancel()
		cancel()
		<-done
	}
}

// onLink mirrors the tunnel's status into the agent's.
func (a *Agent) onLink(ls LinkStatus) {
	a.mu.Lock()
	a.link = ls
	cur := a.state
	a.mu.Unlock()
	a.noteRecipient(ls.SupportRecipient)
	switch {
	case cur == state.Draining || cur == state.NeedsRecovery || cur == state.Enrolling:
		return
	case ls.State == state.Online || ls.State == state.Reconnecting || ls.State == state.Connecting:
		if CanTransition(cur, ls.State) {
			a.transition(ls.State, ls.Reason, "")
		}
	}
}

// Renewed stores a renewed certificate chain (DER, leaf first) for the
// current key; the tunnel calls it after renewal over the tunnel.
func (a *Agent) Renewed(chain [][]byte) error {
	a.mu.Lock()
	cur := a.id
	a.mu.Unlock()
	if cur == nil {
		return errors.New("no identity to renew")
	}
	next := &identity.Identity{ConnectorID: cur.ConnectorID, ControlPlane: cur.ControlPlane, Key: cur.Key, CAPEM: cur.CAPEM}
	for _, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("renewed certificate: %w", err)
		}
		next.Chain = append(next.Chain, c)
	}
	if len(next.Chain) == 0 {
		return errors.New("renewed certificate chain is empty")
	}
	if err := next.Check(a.opt.Now()); err != nil && !errors.Is(err, identity.ErrExpired) && !errors.Is(err, identity.ErrNotYetValid) {
		return fmt.Errorf("renewed certificate: %w", err) // (this machine's clock does not judge validity)
	}
	if err := a.opt.Store.Save(next); err != nil {
		return err
	}
	a.mu.Lock()
	a.id = next
	a.mu.Unlock()
	return nil
}

// Watchdog sends WATCHDOG=1 every interval/2 while the agent answers (its
// lock can be taken) until ctx ends. Run it alongside Run when systemd's
// watchdog is on.
func (a *Agent) Watchdog(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ok := make(chan struct{})
			go func() {
				a.mu.Lock()
				//lint:ignore SA2001 the empty section is the probe: can the lock be taken at all?
				a.mu.Unlock()
				close(ok)
			}()
			select {
			case <-ok:
				a.notify("WATCHDOG=1")
			case <-time.After(interval / 2):
				a.log.Error("agent not answering; withholding the watchdog ping")
			}
		}
	}
}
