package console

import (
	"fmt"

	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// waitingView is shown while the other console runs the wizard. It follows
// that console's setup record, and starts over from the top (health
// screen, stopped screen or wizard) as soon as the lock is free: when
// setup ended, or was given up there.
type waitingView struct {
	rec  setupRecord
	pair pairWatch // the connector's pairing, shown here too (pairing.go)
}

func (v *waitingView) tick(a *App) {
	l, rec, err := tryLock(a.env.Root)
	if err != nil {
		return
	}
	if l != nil {
		l.release()
		a.start()
		return
	}
	v.rec = rec
	v.pair.refresh(a)
}

func (v *waitingView) draw(a *App) page {
	holder := v.rec.holderName()
	if p, ok := v.pair.followPage(a, "Waiting for "+holder); ok {
		return p
	}
	var body []screen.Line
	if v.rec.Phase == phaseFailed {
		body = append(body, bold(fmt.Sprintf("  Setup on %s stopped at the failed step: %s.", holder, v.rec.Step)), blank())
	} else {
		body = append(body, bold(fmt.Sprintf("  Setup is running on %s.", holder)), blank(),
			text("  Only one console can change the settings at a time. This screen follows"),
			text("  its progress and continues when it is done."), blank())
	}
	for _, p := range v.rec.Progress {
		body = append(body, text("    "+p))
	}
	if v.rec.Phase == phaseFailed {
		body = append(body, blank())
		for _, l := range screen.WrapText(v.rec.Message, a.width()-4) {
			body = append(body, bold("  "+l))
		}
		if v.rec.Hint != "" {
			body = append(body, a.wrap(2, "hint: "+v.rec.Hint)...)
		}
		body = append(body, a.wrap(2, "The operator on "+holder+" can edit the settings or retry there.")...)
	}
	return page{title: "Setup", body: body, help: "Waiting for " + holder}
}

func (v *waitingView) key(a *App, k screen.Key) {}
