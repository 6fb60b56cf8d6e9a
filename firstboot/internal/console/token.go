package console

// The wizard's token step: the enrolment token typed by the operator (or
// taken from the OVF environment), checked before anything is sent.

import (
	"context"
	"errors"
	"fmt"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
)

// canonical returns a typed token in canonical form ("" if it is invalid).
func canonical(typed string) string {
	c, _ := protocol.ParseToken(typed)
	return c
}

func (w *wizard) gotoToken(a *App) {
	// A token already typed (or from OVF) is kept when going back to edit
	// other settings; the summary offers 3 to change it.
	if w.token != "" {
		w.gotoSummary(a)
		return
	}
	a.progress("Enrolment token")
	a.show(w.tokenForm())
}

func (w *wizard) tokenForm() *form {
	tok := &field{label: "Enrolment token", kind: fieldToken, check: checkTokenOrPair,
		note: pairNote}
	f := &form{title: w.stepTitle(3, "Enrolment token"), fields: []*field{tok},
		intro: "Create a token in the VaultPAM dashboard: Connectors -> Add Connector. " +
			"It has 20 characters in 4 groups of 5, is valid for 1 hour and works once. " +
			"Type it here; case does not matter and the dashes are added for you. " +
			"The last character is a check: a typo is caught before anything is sent."}
	f.done = func(a *App) {
		if pairKey(tok.value) {
			tok.value, w.token = "", ""
			a.progress("Summary (pairing with a code)")
			w.unattended = false
			a.show(&pairSummaryView{summaryView{w: w}})
			return
		}
		w.token, _ = protocol.ParseToken(tok.value)
		tok.value = ""
		w.gotoSummary(a)
	}
	f.back = func(a *App) { a.show(w.controlPlaneForm()) }
	return f
}

// pairNote tells the operator about pairing where a token is typed.
const pairNote = "No token at hand? Type P and press Enter to pair with a code instead: " +
	"the console shows a code and a QR code to approve in the VaultPAM dashboard."

// checkTokenOrPair is checkToken, but accepts "P" (pair instead).
func checkTokenOrPair(v string) string {
	if pairKey(v) {
		return ""
	}
	return checkToken(v)
}

// checkToken reports a token's problem in words, never echoing it.
func checkToken(v string) string {
	_, err := protocol.ParseToken(v)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, protocol.ErrTokenEmpty):
		return "Token: empty; type the 20 characters shown in the dashboard"
	case errors.Is(err, protocol.ErrTokenLength):
		return fmt.Sprintf("Token: %d of 20 characters typed; a token is 4 groups of 5", len(v))
	case errors.Is(err, protocol.ErrTokenTypo):
		return "Token has a typo (check character does not match); compare it with the dashboard and retype"
	}
	return "Token: " + err.Error()
}

// setupSteps is the first-boot pipeline: the network part, then the
// connector, the token and the enrolment.
func setupSteps(iface string) []step {
	return append(networkSteps(iface), connectorStep(), tokenStep(), enrolStep())
}

func tokenStep() step {
	return step{id: stepToken, title: "Hand over the token", run: func(ctx context.Context, r *applyRun) (string, error) {
		if r.token == "" {
			return "", &stepFailure{kind: failToken, msg: "Token: the token was already handed over; enrolment needs a new one", hint: "press T to type a new token"}
		}
		token := r.token
		r.token = ""
		r.handOver()
		err := r.env.Connector.SubmitToken(ctx, token)
		if err != nil {
			msg, hint := apiError(err)
			return "", &stepFailure{kind: failToken, msg: "Token: " + msg, hint: hint}
		}
		return "accepted", nil
	}}
}

func enrolStep() step {
	return step{title: "Enrolment", run: func(ctx context.Context, r *applyRun) (string, error) {
		st, err := waitOnline(ctx, r.env, func(st localapi.Status) { r.progress(state.LabelOf(st.State)) })
		if err != nil {
			kind, hint := failOther, st.Hint
			if st.State == state.AwaitingToken.String() || st.State == state.NeedsRecovery.String() {
				kind = failToken
				if hint == "" {
					hint = "press T to type a new token"
				}
			}
			return "", &stepFailure{kind: kind, msg: "Enrolment: " + err.Error(), hint: hint}
		}
		r.online = &st
		return fmt.Sprintf("Online as %s", st.ConnectorID), nil
	}}
}
