package console

// Pairing in the first-boot wizard: "P, Enter" at the token step (or an
// OVF deploy that answered everything but carried no token) applies the
// settings like a typed token would — network, checks, the connector —
// and then, where the token would be handed over, pairs: the pairing
// screen shows the code until it is approved, then enrolment runs as
// usual and setup ends Online.

import (
	"context"
	"time"

	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// pairSetupSteps is setupSteps with pairing in the token's place.
func pairSetupSteps(iface string) []step {
	return append(networkSteps(iface), connectorStep(), pairStep(), enrolStep())
}

// pairStep asks the connector to pair and waits, for as long as it takes,
// until an administrator decides. It has the token step's ID: after a
// failure, T (a typed token after all) resumes here, and then it hands
// that token over instead.
func pairStep() step {
	tok := tokenStep()
	return step{id: stepToken, title: "Pair with a code", run: func(ctx context.Context, r *applyRun) (string, error) {
		if r.token != "" {
			return tok.run(ctx, r)
		}
		p, ok := pairerOf(r.env)
		if !ok {
			return "", &stepFailure{kind: failToken, msg: "Pairing: this connector cannot pair", hint: "press T to type a token"}
		}
		if _, err := p.StartPairing(ctx); err != nil {
			msg, hint := apiError(err)
			return "", &stepFailure{kind: failToken, msg: "Pairing: " + msg, hint: orDefault(hint, "press R to try again or T to type a token")}
		}
		r.progress("waiting for a code")
		for {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := r.env.Connector.Status(c)
			cancel()
			if err == nil {
				switch st.State {
				case state.Pairing.String():
					if pr := st.Pairing; pr != nil {
						// Public: the other console shows this line.
						r.progress("code " + pr.UserCode + ", approve at " + pr.VerificationURL)
					}
				case state.Enrolling.String(), state.Connecting.String(), state.Online.String():
					return "approved", nil
				case state.AwaitingToken.String(), state.NeedsRecovery.String():
					return "", &stepFailure{kind: failToken, msg: "Pairing: " + orDefault(st.Reason, "the pairing ended"),
						hint: "press R to ask for a new code, or T to type a token"}
				}
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}}
}

// applyPairing applies the settings and pairs (pairApplyView).
func (w *wizard) applyPairing(a *App) {
	steps := pairSetupSteps(w.s.LinkName())
	v := &pairApplyView{applyView: &applyView{w: w, steps: steps, lines: make([]stepLine, len(steps))}}
	a.show(v)
	v.run(a, 0)
}

// pairApplyView is the apply screen of a setup that pairs: the steps as
// usual, and the pairing screen while the pairing and the enrolment after
// it run.
type pairApplyView struct {
	*applyView
	watch     pairWatch
	cancelled bool // Esc: back to the token step once the pairing ended
	typed     bool // resumed with a typed token: no pairing screen
}

// pairing reports whether the pairing screen shows: the pairing step or
// the enrolment after it runs, without a typed token.
func (v *pairApplyView) pairing() bool {
	i := stepIndex(v.steps, stepToken)
	if !v.running || i < 0 || v.typed {
		return false
	}
	for j := i; j < len(v.steps); j++ {
		if v.lines[j].state == stepRunning {
			return v.watch.seen || v.lines[i].state == stepRunning
		}
	}
	return false
}

func (v *pairApplyView) tick(a *App) {
	if v.pairing() {
		v.watch.refresh(a)
	}
	switch {
	case v.cancelled && !v.running:
		v.cancelled = false
		v.toTokenStep(a)
	case v.cancelled && v.watch.st.State == state.Pairing.String():
		// Esc came while the connector was still being asked to pair
		// (POST /v1/pair answers once it has a code): stop it again.
		stopPairing(a)
	}
}

func (v *pairApplyView) draw(a *App) page {
	if v.pairing() {
		p := page{title: "Pair with a code", help: "Esc cancel (C too) and type a token instead"}
		p.body, p.msg = v.watch.body(a, "Pair this connector with a code")
		if ph := v.watch.phase(a.env.Now()); ph == pairApproved || ph == pairOnline {
			p.help = "Please wait"
		}
		if v.cancelled {
			p.help = "Cancelling..."
		}
		return p
	}
	p := v.applyView.draw(a)
	if v.done != nil && v.fail == nil && !v.w.networkOnly {
		p.msg = "Setup is complete. The connector was paired with a code; no token is stored."
	}
	return p
}

func (v *pairApplyView) key(a *App, k screen.Key) {
	if v.pairing() {
		cancel := k.Kind == screen.KeyEsc || k.Kind == screen.KeyRune && (k.Rune == 'c' || k.Rune == 'C')
		ph := v.watch.phase(a.env.Now())
		if cancel && !v.cancelled && ph != pairApproved && ph != pairOnline {
			v.cancelled = true
			stopPairing(a)
		}
		return
	}
	v.applyView.key(a, k)
}

// toTokenStep shows the token step after a cancelled pairing: a typed
// token resumes the setup at the token step; P, Enter pairs again.
func (v *pairApplyView) toTokenStep(a *App) {
	f := v.w.tokenForm()
	f.done = func(a *App) {
		v.watch, v.typed = pairWatch{}, !pairKey(f.fields[0].value)
		if v.typed {
			v.w.token = canonical(f.fields[0].value)
		}
		f.fields[0].value = ""
		a.show(v)
		v.run(a, stepIndex(v.steps, stepToken))
	}
	f.back = func(a *App) { a.show(v) }
	a.show(f)
}

// pairSummaryView is the summary of a setup that pairs: the summary, with
// pairing where the token would be.
type pairSummaryView struct{ summaryView }

func (v *pairSummaryView) draw(a *App) page {
	p := v.summaryView.draw(a)
	for i, l := range p.body {
		if len(l) > 0 && l[0].Text == "  "+screen.Pad("Enrolment token", 22) {
			p.body[i] = kv("Enrolment token", "none: pair with a code after applying")
		}
	}
	return p
}

func (v *pairSummaryView) key(a *App, k screen.Key) {
	w := v.w
	switch {
	case k.Kind == screen.KeyEnter:
		w.applyPairing(a)
	case k.Kind == screen.KeyEsc, k.Kind == screen.KeyRune && k.Rune == '3':
		a.show(w.tokenForm())
	default:
		v.summaryView.key(a, k)
	}
}

// withoutToken is called when the OVF environment answered every setting
// but carried no token. Nobody is at the console: like an unattended
// deploy with a token, once a boot, by whichever console takes the lock
// first, it applies the settings, then pairs and shows the code on both
// consoles until an administrator approves it. It reports whether it took
// over; false (the connector cannot pair, or this boot's unattended
// attempt was given up) shows the welcome screen and the wizard.
func (w *wizard) withoutToken(a *App) bool {
	if _, ok := pairerOf(a.env); !ok {
		return false
	}
	if !a.takeLock() {
		return true // the other console applies it; this one follows
	}
	root := a.env.Root
	if readRecord(root).stoppedUnattended() || settings.Configured(root) {
		a.releaseLock()
		a.start()
		return true
	}
	if attempted, _ := ovfMark(root); attempted {
		a.releaseLock()
		return false
	}
	if err := setOVFMark(root, false); err != nil {
		a.releaseLock()
		a.show(&messageView{title: "Setup", lines: []string{"error: recording the unattended setup: " + err.Error(), "hint: /run must be writable"}})
		return true
	}
	w.auto = true
	a.lock.start(a.env.TTY, true, "Applying the OVF settings, then pairing with a code")
	w.applyPairing(a)
	return true
}
