package console

import (
	"fmt"

	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// waitingView is shown while the other console runs the wizard.
type waitingView struct {
	holder   string
	progress []string
}

func (v *waitingView) tick(a *App) {
	l, holder, progress, err := tryLock(a.env.Root, a.env.TTY)
	if err != nil {
		return
	}
	if l != nil {
		// The other console finished or gave up: start over from the top.
		l.release()
		a.start()
		return
	}
	v.holder, v.progress = holder, progress
}

func (v *waitingView) draw(a *App) page {
	body := []screen.Line{bold(fmt.Sprintf("  Setup is running on %s.", v.holder)), blank(),
		text("  Only one console can change the settings at a time. This screen follows"),
		text("  its progress and continues when it is done."), blank()}
	for _, p := range v.progress {
		body = append(body, text("    "+p))
	}
	return page{title: "Setup", body: body, help: "Waiting for " + v.holder}
}

func (v *waitingView) key(a *App, k screen.Key) {}
