package console

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vaultpam/appliance/firstboot/internal/diag"
	"github.com/vaultpam/appliance/firstboot/internal/privileged"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// networkTrier is the part of the helper that applies a network change on
// trial (*privileged.Client has it). The deadline is the helper's, not
// this view's: the previous settings come back even if the console dies.
type networkTrier interface {
	TrialNetwork(ctx context.Context, s settings.Settings) (privileged.TrialState, error)
	KeepNetwork(ctx context.Context) error
	RevertNetwork(ctx context.Context) error
	TrialStatus(ctx context.Context) (privileged.TrialState, error)
}

// trialPhase is where a trial change stands, as this console sees it.
type trialPhase int

const (
	trialStarting  trialPhase = iota // asking the helper
	trialRunning                     // counting down; checks running
	trialKeeping                     // K pressed, asking the helper
	trialKept                        // the new settings stay
	trialReverting                   // R pressed, or the deadline passed
	trialReverted                    // the previous settings are back
	trialFailed                      // the helper refused or failed
)

// trialView applies the network form's answers on trial: a countdown to
// the helper's deadline, the control plane checks run again and again
// until they pass, K keeps the new settings once they do, R goes back at
// once; otherwise the previous settings come back by themselves.
type trialView struct {
	w        *wizard
	h        networkTrier
	phase    trialPhase
	deadline time.Time
	results  []diag.Result // the last complete round of checks
	checking bool
	passed   bool
	msg      string // a refusal, or why the settings came back
	polling  bool
	started  time.Time
	// lastRound is when the last round of checks ended.
	lastRound time.Time
}

// startTrial shows the trial view and starts the trial; without a helper
// that can (an old helper), the change is applied at once as before.
func (w *wizard) startTrial(a *App) bool {
	h, ok := a.env.Privileged.(networkTrier)
	if !ok {
		return false
	}
	v := &trialView{w: w, h: h, started: a.env.Now().Add(-time.Second)}
	a.show(v)
	a.progress("Trying the new network settings")
	s := w.s
	goDo(a, func(ctx context.Context) error {
		st, err := h.TrialNetwork(ctx, s)
		if err == nil {
			a.post(func() { v.deadline = st.Deadline })
		}
		return err
	}, func(err error) {
		if err != nil {
			msg, hint := privilegedError(err)
			v.phase, v.msg = trialFailed, "The network settings were not applied: "+msg
			if hint != "" {
				v.msg += " (hint: " + hint + ")"
			}
			a.releaseLock()
			return
		}
		v.phase = trialRunning
		v.check(a)
	})
	return true
}

// check runs one round of the control plane checks; tick starts the next
// one while the trial runs. passed is the last round's outcome: just
// after the change the old routes may linger a moment, so one early pass
// proves nothing about the new settings.
func (v *trialView) check(a *App) {
	if v.phase != trialRunning || v.checking {
		return
	}
	v.checking = true
	cfg := diagConfig(a.env, v.w.s)
	goDo(a, func(ctx context.Context) []diag.Result {
		return diag.Run(ctx, cfg, nil)
	}, func(rs []diag.Result) {
		v.checking, v.results, v.lastRound = false, rs, a.env.Now()
		_, bad := diag.Failed(rs)
		v.passed = !bad
	})
}

// remaining is the time left on the countdown.
func (v *trialView) remaining(a *App) time.Duration {
	d := v.deadline.Sub(a.env.Now())
	if d < 0 {
		return 0
	}
	return d.Round(time.Second)
}

func (v *trialView) tick(a *App) {
	switch v.phase {
	case trialRunning:
		if !v.checking && a.env.Now().Sub(v.lastRound) >= 2*time.Second {
			v.check(a)
		}
		if !v.deadline.IsZero() && v.remaining(a) == 0 {
			v.phase = trialReverting // the helper does it; watch for it
		}
	}
	if (v.phase == trialReverting || v.phase == trialRunning) && !v.polling {
		v.polling = true
		goDo(a, func(ctx context.Context) privileged.TrialState {
			st, _ := v.h.TrialStatus(ctx)
			return st
		}, func(st privileged.TrialState) {
			v.polling = false
			if !st.Active && st.RevertedAt.After(v.started) && (v.phase == trialRunning || v.phase == trialReverting) {
				v.phase, v.msg = trialReverted, st.RevertReason
				a.releaseLock()
			}
		})
	}
}

func (v *trialView) draw(a *App) page {
	s := v.w.s
	body := []screen.Line{text("  New network settings on " + s.LinkName() + ": " + trialSummary(s)), blank()}
	p := page{title: "Network change on trial"}
	switch v.phase {
	case trialStarting:
		p.msg, p.help = "Applying the new settings...", "Please wait"
	case trialRunning, trialKeeping:
		body = append(body, bold(fmt.Sprintf("  The previous settings come back in %d s unless you keep these.", int(v.remaining(a).Seconds()))), blank())
		for _, r := range v.results {
			st := stepOK
			switch {
			case r.Skipped:
				st = stepSkipped
			case !r.OK:
				st = stepFailed
			}
			body = append(body, text(fmt.Sprintf("  %s %s", st.mark(), clipText(r.Message, a.width()-10))))
		}
		switch {
		case v.passed:
			p.msg = "The control plane is reachable. K keeps the new settings."
		case v.checking && len(v.results) == 0:
			p.msg = "Checking the way to the control plane..."
		default:
			f, _ := diag.Failed(v.results)
			p.msg = "The control plane is not reachable yet (" + f.Step + "); checking again."
		}
		if v.msg != "" {
			p.msg = v.msg
		}
		p.help = "K keep  R go back now"
		if v.phase == trialKeeping {
			p.help = "Please wait"
		}
	case trialReverting:
		p.msg, p.help = "Time is up: the previous settings are coming back...", "Please wait"
	case trialReverted:
		body = append(body, bold("  The previous network settings are back: "+v.msg+"."))
		p.msg, p.help = "Nothing was kept.", "Enter health screen  N try again"
	case trialKept:
		body = append(body, bold("  The new network settings are kept."))
		p.msg, p.help = "Network settings applied.", "Enter health screen"
	case trialFailed:
		body = append(body, a.wrap(2, v.msg)...)
		p.msg, p.help = "The change stopped.", "Enter health screen  N edit again"
	}
	p.body = body
	return p
}

func (v *trialView) key(a *App, k screen.Key) {
	switch v.phase {
	case trialRunning:
		if k.Kind != screen.KeyRune {
			return
		}
		switch k.Rune {
		case 'k', 'K':
			if !v.passed {
				v.msg = "K keeps the settings once the control plane is reachable through them; it is not yet."
				return
			}
			v.phase, v.msg = trialKeeping, ""
			goDo(a, v.h.KeepNetwork, func(err error) {
				if err != nil {
					msg, _ := privilegedError(err)
					v.phase, v.msg = trialFailed, "Keeping the new settings failed: "+msg
				} else {
					v.phase = trialKept
				}
				a.releaseLock()
			})
		case 'r', 'R':
			v.phase = trialReverting
			goDo(a, v.h.RevertNetwork, func(err error) {
				if err != nil {
					msg, _ := privilegedError(err)
					v.phase, v.msg = trialFailed, "Going back failed: "+msg
					a.releaseLock()
				}
				// else the status poll sees the revert
			})
		}
	case trialReverted, trialKept, trialFailed:
		switch {
		case k.Kind == screen.KeyEnter:
			a.showHealth()
		case k.Kind == screen.KeyRune && (k.Rune == 'n' || k.Rune == 'N') && v.phase != trialKept:
			a.startWizard(true)
		}
	}
}

// trialSummary is one line of what is being tried.
func trialSummary(s settings.Settings) string {
	var parts []string
	switch {
	case s.NoIPv4:
		parts = append(parts, "no IPv4")
	case s.DHCP:
		parts = append(parts, "DHCP")
	default:
		parts = append(parts, s.Address+" via "+s.Gateway)
	}
	switch s.IPv6 {
	case settings.IPv6Static:
		parts = append(parts, s.Address6+" via "+s.Gateway6)
	case settings.IPv6SLAAC, settings.IPv6DHCPv6:
		parts = append(parts, "IPv6 "+s.IPv6)
	}
	if s.VLAN != "" {
		parts = append(parts, "VLAN "+s.VLAN)
	}
	return strings.Join(parts, ", ")
}
