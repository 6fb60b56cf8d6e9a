package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/vaultpam/appliance/connector/allowlist"
	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
)

// Pairing without typing a token (protocol/pair.go). From Waiting for
// token or Needs recovery, POST /v1/pair (StartPairing) moves the agent to
// Pairing: it asks the control plane for a pairing, shows the user code
// and the verification URL in its status, and polls every interval
// (slow_down adds 5 s for good). On approval it runs the same token
// enrolment as a typed token, with the pairing's single-use token, which
// it never shows, logs or stores:
//
//	awaiting_token|needs_recovery ─POST /v1/pair→ pairing ─approved→ enrolling → connecting → online
//	pairing ─denied, DELETE /v1/pair, a refusal→ back where it was, with the reason
//	pairing ─code expired→ pairing (a new code, by itself, until stopped)
//	pairing ─token typed→ enrolling (the pairing ends; the token path wins)
//
// The device code lives in the pairing loop's variables only: not in the
// status, not on disk, not in a log.

// Pairer is what the agent needs from the control plane to pair
// (*enrol.Client implements it).
type Pairer interface {
	StartPairing(ctx context.Context, req protocol.PairStartRequest) (protocol.PairStart, error)
	PollPairing(ctx context.Context, deviceCode string) (protocol.PairResult, error)
}

// pairStartWait is how long StartPairing waits for the first code.
const pairStartWait = 10 * time.Second

// pairControl is one wanted pairing: from StartPairing until it ends
// (approved, denied, stopped, a token typed, shutdown).
type pairControl struct {
	ctx    context.Context
	cancel context.CancelFunc
	first  chan error // the first code request's outcome (buffered)
	ended  bool       // under Agent.mu: nothing of this pairing changes the state any more
}

// StartPairing implements localapi.Pairer: it starts pairing (or returns
// the one under way) and waits up to pairStartWait for the first code.
func (a *Agent) StartPairing(ctx context.Context) (localapi.Pairing, error) {
	if a.pairer() == nil {
		return localapi.Pairing{}, &localapi.Error{Status: 501, Code: "not_supported", Message: "this connector cannot pair"}
	}
	a.submitMu.Lock()
	a.mu.Lock()
	st, ctl := a.state, a.pairCtl
	switch {
	case st == state.Pairing && ctl != nil:
	case st == state.AwaitingToken || st == state.NeedsRecovery:
		pctx, cancel := context.WithCancel(context.Background())
		ctl = &pairControl{ctx: pctx, cancel: cancel, first: make(chan error, 1)}
		a.pairCtl, a.pairing = ctl, nil
		a.waiting, a.waitingWhy = st, a.reason
	default:
		a.mu.Unlock()
		a.submitMu.Unlock()
		return localapi.Pairing{}, &localapi.Error{Status: 409, Code: "not_pairable",
			Message: "the connector is " + st.Label() + "; pairing is for a connector that waits for a token or needs recovery",
			Hint:    "wait until it shows Waiting for token or Needs recovery"}
	}
	a.mu.Unlock()
	if st != state.Pairing {
		a.transition(state.Pairing, "asking the control plane for a pairing code", "")
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
	a.submitMu.Unlock()

	wait := time.NewTimer(pairStartWait)
	defer wait.Stop()
	var err error
	select {
	case err = <-ctl.first:
		ctl.first <- err // for the next caller
	case <-wait.C:
	case <-ctx.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.pairing != nil && a.pairCtl == ctl:
		return *a.pairing, nil
	case a.pairCtl == ctl && !ctl.ended:
		return localapi.Pairing{}, nil // still asking: the status says why
	}
	msg := "pairing did not start: " + a.reason
	if err != nil {
		msg = "pairing did not start: " + err.Error()
	}
	return localapi.Pairing{}, &localapi.Error{Status: 502, Code: "pairing_failed", Message: msg, Hint: a.hint}
}

// StopPairing implements localapi.Pairer: the pairing ends and the
// connector goes back to waiting for a token (or needing recovery).
func (a *Agent) StopPairing(context.Context) error {
	a.mu.Lock()
	ctl := a.pairCtl
	if a.state != state.Pairing || ctl == nil {
		st := a.state
		a.mu.Unlock()
		return &localapi.Error{Status: 409, Code: "not_pairing", Message: "the connector is " + st.Label() + ", not pairing"}
	}
	a.endPairingLocked(ctl)
	back := a.waiting
	a.mu.Unlock()
	a.transition(back, "pairing stopped on request", backHint(back))
	return nil
}

// endPairingLocked ends ctl: its loop stops and changes nothing more.
func (a *Agent) endPairingLocked(ctl *pairControl) {
	ctl.ended = true
	ctl.cancel()
	if a.pairCtl == ctl {
		a.pairCtl, a.pairing = nil, nil
	}
}

func backHint(s state.State) string {
	if s == state.NeedsRecovery {
		return "enter a recovery token (dashboard: Connectors → the connector → Recover), or pair again"
	}
	return "enter the enrolment token from the dashboard (Connectors → Add), or pair again"
}

func (a *Agent) pairer() Pairer {
	if a.opt.Pairer != nil {
		return a.opt.Pairer
	}
	p, _ := a.opt.Enroller.(Pairer)
	return p
}

// pairUpdate changes the reason (or state) for ctl unless it ended.
func (a *Agent) pairUpdate(ctl *pairControl, to state.State, reason, hint string) bool {
	a.mu.Lock()
	ended := ctl.ended
	a.mu.Unlock()
	if ended {
		return false
	}
	return a.transition(to, reason, hint)
}

// pairFail ends ctl for good and goes back with reason.
func (a *Agent) pairFail(ctl *pairControl, reason, hint string) {
	a.mu.Lock()
	if ctl.ended {
		a.mu.Unlock()
		return
	}
	a.endPairingLocked(ctl)
	back := a.waiting
	why := a.waitingWhy
	a.mu.Unlock()
	if back == state.NeedsRecovery && why != "" {
		reason = why + "; " + reason
	}
	if hint == "" {
		hint = backHint(back)
	}
	a.log.Warn("pairing ended", "reason", reason)
	a.transition(back, reason, hint)
}

// firstOutcome reports the first code request's outcome once.
func firstOutcome(ctl *pairControl, err error) {
	select {
	case ctl.first <- err:
	default:
	}
}

// pair runs the wanted pairing until it ends. Called from Run in
// state.Pairing.
func (a *Agent) pair(ctx context.Context) {
	a.mu.Lock()
	ctl := a.pairCtl
	a.mu.Unlock()
	if ctl == nil { // ended before Run got here; the state follows at once
		wait(ctx, 10*time.Millisecond)
		return
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ctl.ctx.Done():
			cancel()
		case <-pctx.Done():
		}
	}()
	p := a.pairer()
	for n := 0; ; {
		ps, err := p.StartPairing(pctx, a.pairRequest())
		if pctx.Err() != nil {
			firstOutcome(ctl, errors.New("stopped"))
			return
		}
		if err != nil {
			var ee *enrol.Error
			var se *enrol.StatusError
			if errors.As(err, &se) && se.Status == 404 {
				firstOutcome(ctl, err)
				a.pairFail(ctl, "this control plane does not offer pairing ("+se.Text+" for "+protocol.PairStartPath+")",
					"enter an enrolment token from the dashboard (Connectors → Add) instead")
				return
			}
			if errors.As(err, &ee) && ee.Code != protocol.CodePairRateLimited && enrol.Permanent(err) {
				firstOutcome(ctl, err)
				a.pairFail(ctl, fmt.Sprintf("the control plane refused to pair (%s): %s", ee.Code, ee.Message), ee.Hint())
				return
			}
			d := a.opt.RetryDelay(n)
			n++
			why, hint := retryReason(err)
			firstOutcome(ctl, err)
			a.pairUpdate(ctl, state.Pairing, fmt.Sprintf("asking for a pairing code: %s; retrying in %s", why, d.Round(time.Millisecond)), hint)
			if !wait(pctx, d) {
				return
			}
			continue
		}
		n = 0
		switch tok, done := a.pairWith(pctx, ctl, p, ps); {
		case done:
			return
		case tok != nil:
			a.enrolWith(ctx, tok.Token)
			return
		}
		// The code expired: ask for a new one.
	}
}

// pairWith shows ps and polls until it is decided. It returns the
// approval's result, or done when the pairing ended (denied, stopped,
// shutdown), or neither when the code expired and a new one is wanted.
func (a *Agent) pairWith(ctx context.Context, ctl *pairControl, p Pairer, ps protocol.PairStart) (res *protocol.PairResult, done bool) {
	code := protocol.FormatUserCode(ps.UserCode)
	expires := a.opt.Now().Add(time.Duration(ps.ExpiresIn) * time.Second).UTC()
	view := &localapi.Pairing{UserCode: code, VerificationURL: ps.VerificationURI, VerificationURLComplete: ps.VerificationURIComplete, ExpiresAt: expires}
	a.mu.Lock()
	if ctl.ended {
		a.mu.Unlock()
		return nil, true
	}
	a.pairing = view
	a.mu.Unlock()
	firstOutcome(ctl, nil)
	a.log.Info("pairing: code shown, waiting for approval", "code", code, "url", ps.VerificationURI, "expires_at", expires)
	a.pairUpdate(ctl, state.Pairing, fmt.Sprintf("waiting for an administrator to approve code %s (valid until %s)", code, expires.Format("15:04 MST")),
		"open "+ps.VerificationURI+" (or scan the QR code), sign in and approve code "+code)
	interval := max(time.Duration(ps.Interval)*time.Second, time.Second)
	pollWait := a.opt.PollWait
	if pollWait == nil {
		pollWait = wait
	}
	for failures := 0; ; {
		if !pollWait(ctx, interval) {
			return nil, true
		}
		r, err := p.PollPairing(ctx, ps.DeviceCode)
		if ctx.Err() != nil {
			return nil, true
		}
		var ee *enrol.Error
		switch {
		case err == nil:
			a.mu.Lock()
			if ctl.ended {
				a.mu.Unlock()
				return nil, true // a token was typed meanwhile; it wins
			}
			a.endPairingLocked(ctl)
			a.mu.Unlock()
			what := "a new connector named " + r.Name
			if r.Recovery {
				what = "the recovery of " + r.ConnectorID
			}
			a.log.Info("pairing approved", "code", code, "recovery", r.Recovery, "connector", r.ConnectorID)
			a.transition(state.Enrolling, fmt.Sprintf("pairing of code %s approved as %s; enrolling", code, what), "")
			return &r, false
		case errors.As(err, &ee) && ee.Code == protocol.CodePairPending:
			failures = 0
		case errors.As(err, &ee) && ee.Code == protocol.CodePairSlowDown:
			interval += protocol.PairSlowDownStep * time.Second
			a.log.Info("pairing: the control plane asked to poll more slowly", "interval", interval)
		case errors.As(err, &ee) && ee.Code == protocol.CodePairDenied:
			a.pairFail(ctl, fmt.Sprintf("an administrator denied the pairing of code %s (%s)", code, ee.Code), ee.Hint())
			return nil, true
		case errors.As(err, &ee) && (ee.Code == protocol.CodePairExpired || ee.Code == protocol.CodePairUnknown):
			a.clearPairing(ctl)
			a.pairUpdate(ctl, state.Pairing, fmt.Sprintf("code %s expired without an approval (%s); asking for a new code", code, ee.Code), "")
			return nil, false
		default:
			// The network or the control plane: keep polling while
			// the code is valid.
			failures++
			why, hint := retryReason(err)
			a.pairUpdate(ctl, state.Pairing, fmt.Sprintf("still showing code %s; polling failed (%s)", code, why), hint)
			if failures > 1 {
				interval = min(interval*2, 30*time.Second)
			}
		}
		if !a.opt.Now().Before(expires) {
			a.clearPairing(ctl)
			a.pairUpdate(ctl, state.Pairing, fmt.Sprintf("code %s expired without an approval; asking for a new code", code), "")
			return nil, false
		}
	}
}

func (a *Agent) clearPairing(ctl *pairControl) {
	a.mu.Lock()
	if a.pairCtl == ctl {
		a.pairing = nil
	}
	a.mu.Unlock()
}

// pairRequest says who asks: what the administrator sees on the approval
// page.
func (a *Agent) pairRequest() protocol.PairStartRequest {
	req := protocol.PairStartRequest{Name: a.opt.Config.ConnectorName, Version: a.opt.Version}
	hostname := a.opt.Hostname
	if hostname == nil {
		hostname = os.Hostname
	}
	if h, err := hostname(); err == nil {
		req.Hostname = h
	}
	if a.opt.Updates != nil {
		if img := a.opt.Updates.Image(); img != nil {
			req.ImageVersion = img.Version
		}
	}
	locals := a.opt.LocalAddrs
	if locals == nil {
		locals = allowlist.InterfaceAddrs
	}
	if ps, err := locals(); err == nil {
		for _, p := range ps {
			if ad := p.Addr(); shownAddr(ad) && len(req.Addresses) < 16 {
				req.Addresses = append(req.Addresses, ad.String())
			}
		}
	}
	a.mu.Lock()
	if a.waiting == state.NeedsRecovery && a.id != nil {
		req.ConnectorID = a.id.ConnectorID
	}
	a.mu.Unlock()
	return req
}

// shownAddr reports whether an address tells an administrator which
// machine asks: not loopback, link-local or unspecified.
func shownAddr(a netip.Addr) bool {
	return a.IsValid() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsUnspecified() && !a.IsMulticast()
}
