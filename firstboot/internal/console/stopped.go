package console

import (
	"fmt"

	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// stoppedView shows where an unattended (OVF) setup stopped, on both
// consoles, with no key pressed: the failed step, what failed and the
// hint. Nothing retries by itself and the OVF token is never sent twice;
// an operator on either console takes over with E (edit the settings, a
// new token if the OVF one was handed over) or R (apply them again).
type stoppedView struct {
	rec setupRecord
}

func (v *stoppedView) tick(a *App) {
	if rec, busy := otherHolder(a.env.Root); busy {
		a.show(&waitingView{rec: rec}) // taken over on the other console
		return
	}
	if rec := readRecord(a.env.Root); !rec.stoppedUnattended() {
		a.start() // set up meanwhile
	}
}

func (v *stoppedView) draw(a *App) page {
	r := v.rec
	body := []screen.Line{bold(fmt.Sprintf("  Unattended setup (OVF environment) stopped at: %s", r.Step)), blank()}
	for _, p := range r.Progress {
		body = append(body, text("    "+p))
	}
	body = append(body, blank())
	for _, l := range screen.WrapText(r.Message, a.width()-4) {
		body = append(body, bold("  "+l))
	}
	if r.Hint != "" {
		body = append(body, a.wrap(2, "hint: "+r.Hint)...)
	}
	body = append(body, blank())
	body = append(body, a.wrap(2, "Nothing is retried by itself. E shows the settings to change them (and asks for a "+
		"new token if the OVF one was handed over), R applies them again.")...)
	help := "E edit settings  R retry"
	if settings.Configured(a.env.Root) {
		help += "  Esc health screen"
	}
	return page{title: "Setup stopped", body: body, msg: "Setup stopped at the failed step.", help: help}
}

func (v *stoppedView) key(a *App, k screen.Key) {
	switch {
	case k.Kind == screen.KeyEsc && settings.Configured(a.env.Root):
		a.showHealth()
	case k.Kind == screen.KeyRune && (k.Rune == 'e' || k.Rune == 'E'):
		v.takeOver(a, func(w *wizard) { w.gotoToken(a) })
	case k.Kind == screen.KeyRune && (k.Rune == 'r' || k.Rune == 'R'):
		v.takeOver(a, func(w *wizard) { w.apply(a) })
	}
}

// takeOver makes this console run the wizard from the stopped setup's
// settings, read again from the OVF environment, then calls next.
func (v *stoppedView) takeOver(a *App, next func(w *wizard)) {
	if !a.takeLock() {
		return
	}
	if !readRecord(a.env.Root).stoppedUnattended() {
		a.releaseLock() // someone acted meanwhile
		a.start()
		return
	}
	a.lock.start(a.env.TTY, false, "Taking over the stopped setup")
	a.show(&messageView{title: "Setup", lines: []string{"Reading the deployment settings (OVF environment)..."}})
	w := &wizard{s: settings.Default()}
	w.s.ControlPlaneURL = a.env.DefaultURL
	a.readOVF(func(r ovfResult) {
		w.fromOVF(a, r)
		w.unattended = false // an operator is here: show every step
		next(w)
	})
}
