package console

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

type stepState int

const (
	stepPending stepState = iota
	stepRunning
	stepOK
	stepFailed
	stepSkipped
)

func (s stepState) mark() string {
	return [...]string{"[    ]", "[ .. ]", "[ OK ]", "[FAIL]", "[ -- ]"}[s]
}

// stepLine is what the screen shows of one step.
type stepLine struct {
	state  stepState
	detail string
}

// applyView runs an apply pipeline (setupSteps, or networkSteps for "edit
// network") and shows each step's outcome.
type applyView struct {
	w       *wizard
	steps   []step
	lines   []stepLine
	running bool
	fail    *stepFailure // the failure that stopped the last run
	done    *localapi.Status
}

func (w *wizard) apply(a *App) {
	// A change to a configured appliance's network is tried first: it
	// comes back by itself unless kept (trial.go).
	if w.networkOnly && w.startTrial(a) {
		return
	}
	steps := setupSteps(w.s.LinkName())
	if w.networkOnly {
		steps = networkSteps(w.s.LinkName())
	}
	v := &applyView{w: w, steps: steps, lines: make([]stepLine, len(steps))}
	a.show(v)
	v.run(a, 0)
}

// set changes step i's line (from the run's goroutine) and tells the other
// console.
func (v *applyView) set(a *App, i int, st stepState, detail string) {
	a.post(func() {
		v.lines[i] = stepLine{st, detail}
		v.report(a)
	})
}

// report writes the step lines into the setup record.
func (v *applyView) report(a *App) {
	var lines []string
	for j, l := range v.lines {
		lines = append(lines, l.state.mark()+" "+v.steps[j].title)
	}
	a.progress(lines...)
}

// failAt marks step i failed and the steps after it skipped; after a
// failed check, the checks after it say they were not checked.
func (v *applyView) failAt(a *App, i int, f *stepFailure) {
	v.set(a, i, stepFailed, f.msg)
	a.post(func() {
		for j := i + 1; j < len(v.steps); j++ {
			if v.lines[j].state != stepPending {
				continue
			}
			v.lines[j].state = stepSkipped
			if v.steps[i].check && v.steps[j].check {
				v.lines[j].detail = "not checked"
			}
		}
		v.running, v.fail = false, f
		v.report(a)
		v.stopped(a, i)
	})
}

// stopped tells the other console where setup stopped. An unattended
// setup then gives up the lock, and both consoles show the stopped screen:
// nobody is here to press a key, and nothing retries by itself.
func (v *applyView) stopped(a *App, i int) {
	a.lock.failed(v.steps[i].title, v.fail)
	if !v.w.auto {
		return // the operator here decides: E, R, C or T
	}
	var rec setupRecord
	if a.lock != nil {
		rec = a.lock.rec
	}
	a.releaseLock()
	a.show(&stoppedView{rec: rec})
}

// finished ends a run that succeeded: the lock goes (the other console
// shows the health screen now), and so does this console, at once after an
// unattended setup, else when the operator presses Enter or after
// Env.DoneTimeout (an operator who walked away).
func (v *applyView) finished(a *App) {
	a.releaseLock()
	if v.w.auto {
		a.showHealth()
		return
	}
	d := a.env.DoneTimeout
	goDo(a, func(ctx context.Context) bool {
		select {
		case <-time.After(d):
			return true
		case <-ctx.Done():
			return false
		}
	}, func(bool) {
		if a.cur == view(v) {
			a.showHealth()
		}
	})
}

// run runs the steps from first on in the background.
func (v *applyView) run(a *App, first int) {
	for i := first; i < len(v.steps); i++ {
		v.lines[i] = stepLine{}
	}
	v.running, v.fail = true, nil
	a.lock.resume()
	root, auto := a.env.Root, v.w.auto
	r := &applyRun{env: a.env, s: v.w.s, token: v.w.token,
		handOver: func() {
			if auto {
				setOVFMark(root, true) // before it leaves: the OVF token is never sent twice
			}
			a.post(func() { v.w.token = "" })
		}}
	steps := v.steps
	go func() {
		defer r.close()
		for i := first; i < len(steps); i++ {
			v.set(a, i, stepRunning, "")
			r.progress = func(d string) { v.set(a, i, stepRunning, d) }
			detail, err := steps[i].run(a.ctx, r)
			var skip skipped
			switch {
			case err == nil:
				v.set(a, i, stepOK, detail)
			case errors.As(err, &skip):
				v.set(a, i, stepSkipped, skip.detail)
			default:
				v.failAt(a, i, asFailure(err))
				return
			}
		}
		a.post(func() {
			v.running = false
			v.done = r.online
			if v.done == nil {
				v.done = &localapi.Status{} // network only: nothing enrolled
			}
			v.finished(a)
		})
	}()
}

func (v *applyView) draw(a *App) page {
	var body []screen.Line
	for i, s := range v.steps {
		l := v.lines[i]
		line := fmt.Sprintf("  %s %-28s", l.state.mark(), s.title)
		d := l.detail
		if l.state == stepFailed {
			d = ""
		}
		body = append(body, screen.Line{{Text: line}, {Text: " " + clipText(d, a.width()-len(line)-2)}})
	}
	p := page{title: "Applying settings", body: body, help: "Please wait"}
	switch {
	case v.fail != nil:
		p.body = append(p.body, blank())
		for _, l := range screen.WrapText(v.fail.msg, a.width()-4) {
			p.body = append(p.body, bold("  "+l))
		}
		if v.fail.hint != "" {
			p.body = append(p.body, a.wrap(2, "hint: "+v.fail.hint)...)
		}
		if u := v.fail.untrusted; u != nil {
			p.body = append(p.body, blank())
			p.body = append(p.body, chainLines(a, *u)...)
		}
		p.msg = "Setup stopped at the failed step."
		switch v.fail.kind {
		case failCheck:
			p.help = "E edit settings  R retry  C continue anyway"
			if v.fail.untrusted != nil {
				p.help = "T trust root  E edit  R retry  C continue anyway"
			}
		case failToken:
			p.help = "T new token  E edit settings  R retry"
		default:
			p.help = "E edit settings  R retry"
		}
	case v.done != nil && v.w.networkOnly:
		p.msg = "Network settings applied."
		p.help = v.doneHelp(a)
	case v.done != nil:
		p.body = append(p.body, blank(), bold(fmt.Sprintf("  Enrolled: %s is Online (ID %s).", firstOf(v.done.ConnectorName, v.w.s.ConnectorName), v.done.ConnectorID)))
		p.msg = "Setup is complete. The token was handed over and is not stored."
		p.help = v.doneHelp(a)
	}
	return p
}

// doneHelp is the key help of the final screen.
func (v *applyView) doneHelp(a *App) string {
	return fmt.Sprintf("Enter health screen (shown by itself after %d s)", int(a.env.DoneTimeout.Seconds()))
}

func (v *applyView) key(a *App, k screen.Key) {
	if v.running {
		return
	}
	if v.done != nil {
		if k.Kind == screen.KeyEnter {
			a.showHealth()
		}
		return
	}
	if v.fail == nil || k.Kind != screen.KeyRune {
		return
	}
	switch k.Rune {
	case 'e', 'E':
		a.show(&summaryView{w: v.w})
	case 'r', 'R':
		v.run(a, 0)
	case 'c', 'C':
		if v.fail.kind == failCheck {
			v.run(a, afterChecks(v.steps))
		}
	case 't', 'T':
		if u := v.fail.untrusted; v.fail.kind == failCheck && u != nil {
			first := len(v.steps)
			for i, s := range v.steps {
				if s.check && i < first {
					first = i
				}
			}
			a.show(&trustView{root: u.Root(), back: v, done: func(a *App) { a.show(v); v.run(a, first) }})
			return
		}
		if v.fail.kind == failToken {
			f := v.w.tokenForm()
			f.done = func(a *App) {
				if pairKey(f.fields[0].value) { // P, Enter: pair instead (pairing_wizard.go)
					f.fields[0].value = ""
					v.w.applyPairing(a)
					return
				}
				v.w.token = canonical(f.fields[0].value)
				a.show(v)
				v.run(a, stepIndex(v.steps, stepToken))
			}
			f.back = func(a *App) { a.show(v) }
			a.show(f)
		}
	}
}
