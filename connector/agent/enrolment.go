package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
)

// An enrolment, crash-safe (connector/README.md, "Enrolment, crash-safe"):
//
//  1. Start: present the token, get the challenge, make the key, the CSR
//     and the proof of possession (the token is not consumed yet);
//  2. store them (identity.Store.SavePending) — before anything else;
//  3. Finish: the control plane checks the proof, consumes the token and
//     issues the certificate, in one transaction; the same request may be
//     sent again and gets the same answer;
//  4. store the identity; 5. remove the pending enrolment.
//
// Killed anywhere, the connector resumes at its next start: before 2 it
// still has the (unused) token, after 2 it sends the same finish request.
// Options.Step is called at each point, for the crash tests.
const (
	StepBeforeStart  = "before-start"  // before the token is presented
	StepAfterStart   = "after-start"   // challenge answered, not yet stored
	StepPendingSaved = "pending-saved" // stored; the control plane not yet asked to finish
	// enrol.StepFinishSent and enrol.StepAnswered come next, from the
	// enrolment client.
	StepBeforeSave = "before-save" // the identity is issued, not yet stored
	StepSaved      = "saved"       // the identity is stored, the pending enrolment not yet removed
	StepDone       = "done"        // the enrolment is over
)

func (a *Agent) step(name string) {
	if a.opt.Step != nil {
		a.opt.Step(name)
	}
}

// enrolWith tries one token. Network failures are retried with backoff
// (nothing is consumed before Finish, and Finish can be repeated); an
// answer from the control plane is final for this token.
func (a *Agent) enrolWith(ctx context.Context, tok string) {
	a.mu.Lock()
	back := a.waiting // SubmitToken moved us to state.Enrolling from here
	a.mu.Unlock()
	var p *identity.Pending
	for n := 0; ; n++ {
		a.step(StepBeforeStart)
		var err error
		p, err = a.opt.Enroller.Start(ctx, tok)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			a.transition(back, "enrolment interrupted by shutdown", "")
			return
		}
		if enrol.Permanent(err) {
			a.refused(back, tok, err)
			return
		}
		if !a.retrying(ctx, n, err) {
			a.transition(back, "enrolment interrupted by shutdown", "")
			return
		}
	}
	a.step(StepAfterStart)
	if err := a.opt.Store.SavePending(p); err != nil {
		why, hint := storeProblem(a.opt.DataDir, err)
		a.transition(back, "enrolment stopped before the token was used: "+why+"; the token was not used", hint+", then enter the token again")
		return
	}
	a.step(StepPendingSaved)
	a.finishPending(ctx, p, tok)
}

// finishPending finishes a stored enrolment: sends its finish request
// until the control plane answers, stores the identity, removes the
// pending enrolment. tok is its token when known (to be remembered as
// used), "" when resumed after a restart.
func (a *Agent) finishPending(ctx context.Context, p *identity.Pending, tok string) {
	a.mu.Lock()
	back := a.waiting
	a.mu.Unlock()
	var id *identity.Identity
	for n := 0; ; n++ {
		var err error
		id, err = a.opt.Enroller.Finish(ctx, p)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			a.transition(back, "enrolment interrupted by shutdown; it is finished at the next start", "")
			return
		}
		if enrol.IsCode(err, protocol.CodeChallengeFailed) {
			// The control plane never took this request: the token was
			// not consumed.
			a.dropPending()
			var ee *enrol.Error
			errors.As(err, &ee)
			a.transition(back, "the enrolment could not be finished ("+ee.Message+"); its token was not used", "enter the token again")
			return
		}
		if enrol.Permanent(err) {
			a.dropPending()
			a.refused(back, tok, err)
			return
		}
		if !a.retrying(ctx, n, err) {
			a.transition(back, "enrolment interrupted by shutdown; it is finished at the next start", "")
			return
		}
	}
	if tok != "" {
		a.burn(tok, protocol.CodeTokenUsed)
	}
	a.step(StepBeforeSave)
	for n := 0; ; n++ {
		err := a.opt.Store.Save(id)
		if err == nil {
			break
		}
		why, hint := storeProblem(a.opt.DataDir, err)
		d := a.opt.RetryDelay(n)
		a.transition(state.Enrolling, fmt.Sprintf("enrolled as %s, but the identity cannot be stored: %s; retrying in %s", id.ConnectorID, why, d.Round(time.Millisecond)),
			hint+"; the enrolment is kept and finished as soon as it can be stored (or at the next start)")
		if !wait(ctx, d) {
			return
		}
	}
	a.step(StepSaved)
	a.dropPending()
	a.mu.Lock()
	a.id = id
	a.mu.Unlock()
	a.log.Info("enrolled", "connector", id.ConnectorID, "cert_not_after", id.Leaf().NotAfter)
	a.transition(state.Connecting, "enrolled as "+id.ConnectorID, "")
	a.step(StepDone)
}

func (a *Agent) dropPending() {
	if err := a.opt.Store.RemovePending(); err != nil {
		a.log.Warn("removing the pending enrolment", "err", err)
	}
}

// retrying reports a failure worth retrying and waits before attempt n+1;
// false when ctx ended meanwhile.
func (a *Agent) retrying(ctx context.Context, n int, err error) bool {
	d := a.opt.RetryDelay(n)
	why, hint := retryReason(err)
	a.transition(state.Enrolling, fmt.Sprintf("%s; retrying in %s", why, d.Round(time.Millisecond)), hint)
	return wait(ctx, d)
}

// refused goes back to where the connector waited, with the control
// plane's refusal of tok in view (and tok remembered as refused).
func (a *Agent) refused(back state.State, tok string, err error) {
	var ee *enrol.Error
	if !errors.As(err, &ee) {
		a.transition(back, "enrolment failed: "+err.Error(), "")
		return
	}
	switch ee.Code {
	case protocol.CodeTokenUsed, protocol.CodeTokenUnknown, protocol.CodeTokenExpired:
		if tok != "" {
			a.burn(tok, ee.Code)
		}
	}
	a.log.Warn("enrolment refused", "code", ee.Code, "err", ee.Message)
	reason := fmt.Sprintf("enrolment refused (%s): %s", ee.Code, ee.Message)
	a.mu.Lock()
	why := a.waitingWhy
	a.mu.Unlock()
	if back == state.NeedsRecovery && why != "" && !strings.Contains(why, "enrolment refused") {
		reason = why + "; " + reason // keep what broke the identity in view
	}
	a.transition(back, reason, ee.Hint())
}

// storeProblem says why the data directory did not take a write, and what
// to do.
func storeProblem(dir string, err error) (reason, hint string) {
	return "cannot write to the data directory " + dir + ": " + err.Error(), "check that PAM_AGENT_DATA_DIR is writable"
}
