package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
)

// Re-enrolment: a token handed over while the connector has a working
// identity (the console's "Re-enrol"). The current identity keeps serving
// until the control plane has issued the new one; a refused token changes
// nothing. SubmitToken waits up to reenrolWait for the answer so the
// console can show a refusal at once; a slower answer shows in the status.
const reenrolWait = 4 * time.Second

// reenrolTimeout bounds the whole enrolment run in the background.
const reenrolTimeout = 2 * time.Minute

func (a *Agent) reenrolWait(tok string) error {
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), reenrolTimeout)
		defer cancel()
		err := a.reenrol(ctx, tok)
		res <- err // buffered: never blocks, read or not
		if err != nil {
			var ee *enrol.Error
			var se *storeError
			reason, hint := "re-enrolment failed: "+err.Error(), ""
			switch {
			case errors.As(err, &ee):
				reason, hint = fmt.Sprintf("re-enrolment refused (%s): %s; still using the current identity", ee.Code, ee.Message), ee.Hint()
			case errors.As(err, &se):
				reason, hint = "re-enrolment failed: "+se.why, se.hint
			}
			a.transition(a.State(), reason, hint)
		}
	}()
	select {
	case err := <-res:
		if err == nil {
			return nil
		}
		var ee *enrol.Error
		var se *storeError
		switch {
		case errors.As(err, &ee):
			return &localapi.Error{Status: 409, Code: ee.Code, Message: "re-enrolment refused: " + ee.Message + "; the connector keeps its current identity", Hint: ee.Hint()}
		case errors.As(err, &se):
			return &localapi.Error{Status: 507, Code: "data_dir_unwritable", Message: "re-enrolment failed: " + se.why, Hint: se.hint}
		}
		return &localapi.Error{Status: 502, Code: "enrolment_failed", Message: "re-enrolment failed: " + err.Error(), Hint: "check the network and the control plane URL, then try again"}
	case <-time.After(reenrolWait):
		return nil // the outcome shows in the status
	}
}

// reenrol enrols with tok; on success it stores the new identity, makes it
// current and restarts the tunnel with it. Like a first enrolment, the
// answer to the challenge is stored before the control plane is asked to
// finish (enrolment.go), so a crash anywhere is resumed at the next start.
func (a *Agent) reenrol(ctx context.Context, tok string) error {
	a.log.Info("re-enrolling with a new token", "connector", a.Status().ConnectorID)
	p, err := a.opt.Enroller.Start(ctx, tok)
	if err != nil {
		var ee *enrol.Error
		if errors.As(err, &ee) {
			switch ee.Code {
			case protocol.CodeTokenUsed, protocol.CodeTokenUnknown, protocol.CodeTokenExpired:
				a.burn(tok, ee.Code)
			}
		}
		return err
	}
	if err := a.opt.Store.SavePending(p); err != nil {
		why, hint := storeProblem(a.opt.DataDir, err)
		return &storeError{why: why + "; the token was not used and the current identity stays in use", hint: hint + ", then enter the token again", err: err}
	}
	id, err := a.opt.Enroller.Finish(ctx, p)
	if err != nil {
		if enrol.Permanent(err) {
			a.dropPending()
		}
		return err
	}
	a.burn(tok, protocol.CodeTokenUsed)
	for n := 0; ; n++ {
		err := a.opt.Store.Save(id)
		if err == nil {
			break
		}
		why, hint := storeProblem(a.opt.DataDir, err)
		d := a.opt.RetryDelay(n)
		a.transition(a.State(), fmt.Sprintf("re-enrolled as %s, but the new identity cannot be stored: %s; retrying in %s (the previous one stays in use)",
			id.ConnectorID, why, d.Round(time.Millisecond)), hint+"; the enrolment is kept and finished as soon as it can be stored (or at the next start)")
		if !wait(ctx, d) {
			return &storeError{why: fmt.Sprintf("re-enrolled as %s, but the new identity could not be stored: %s; it is finished at the next start", id.ConnectorID, why), hint: hint, err: err}
		}
	}
	a.dropPending()
	a.mu.Lock()
	a.id = id
	a.mu.Unlock()
	a.log.Info("re-enrolled", "connector", id.ConnectorID)
	a.transition(state.Connecting, "re-enrolled as "+id.ConnectorID+"; reconnecting with the new identity", "")
	select {
	case a.relink <- struct{}{}:
	default:
	}
	return nil
}

// storeError is a re-enrolment that failed on the data directory, not on
// the network.
type storeError struct {
	why, hint string
	err       error
}

func (e *storeError) Error() string { return e.why }
func (e *storeError) Unwrap() error { return e.err }
