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
			reason, hint := "re-enrolment failed: "+err.Error(), ""
			if errors.As(err, &ee) {
				reason, hint = fmt.Sprintf("re-enrolment refused (%s): %s; still using the current identity", ee.Code, ee.Message), ee.Hint()
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
		if errors.As(err, &ee) {
			return &localapi.Error{Status: 409, Code: ee.Code, Message: "re-enrolment refused: " + ee.Message + "; the connector keeps its current identity", Hint: ee.Hint()}
		}
		return &localapi.Error{Status: 502, Code: "enrolment_failed", Message: "re-enrolment failed: " + err.Error(), Hint: "check the network and the control plane URL, then try again"}
	case <-time.After(reenrolWait):
		return nil // the outcome shows in the status
	}
}

// reenrol enrols with tok; on success it stores the new identity, makes it
// current and restarts the tunnel with it.
func (a *Agent) reenrol(ctx context.Context, tok string) error {
	a.log.Info("re-enrolling with a new token", "connector", a.Status().ConnectorID)
	id, err := a.opt.Enroller.Enrol(ctx, tok)
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
	a.burn(tok, protocol.CodeTokenUsed)
	if err := a.opt.Store.Save(id); err != nil {
		return fmt.Errorf("enrolled as %s but the identity could not be saved (the previous one stays in use): %w", id.ConnectorID, err)
	}
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
