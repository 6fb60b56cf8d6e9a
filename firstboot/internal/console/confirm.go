package console

import (
	"context"

	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// confirmView asks before a destructive action; only Y goes ahead.
type confirmView struct {
	what string
	note string
	do   func(ctx context.Context) error // the action: through the helper, or the updater
	// describe turns do's error into a message and a hint; nil means
	// privilegedError (the helper's errors).
	describe func(error) (msg, hint string)
	// done, when set, is shown once do succeeded (else "requested." stays).
	done string
	err  string
	sent bool
	ok   bool // do succeeded
}

func (v *confirmView) draw(a *App) page {
	body := []screen.Line{bold("  " + v.what + "?"), blank()}
	body = append(body, a.wrap(2, v.note)...)
	p := page{title: "Confirm", body: body, msg: v.err, help: "Y yes  N or Esc no"}
	if v.sent {
		p.msg, p.help = v.what+": requested.", "Please wait"
		if v.ok && v.done != "" {
			p.msg, p.help = v.done, "Esc back"
		}
	}
	return p
}

func (v *confirmView) key(a *App, k screen.Key) {
	if v.sent {
		if v.ok && v.done != "" && k.Kind == screen.KeyEsc {
			a.showHealth()
		}
		return
	}
	switch {
	case k.Kind == screen.KeyRune && (k.Rune == 'y' || k.Rune == 'Y'):
		v.sent = true
		goDo(a, func(ctx context.Context) error {
			return v.do(ctx)
		}, func(err error) {
			v.ok = err == nil
			if err != nil {
				describe := v.describe
				if describe == nil {
					describe = privilegedError
				}
				msg, hint := describe(err)
				v.sent, v.err = false, "error: "+msg
				if hint != "" {
					v.err += "; " + hint
				}
			}
		})
	case k.Kind == screen.KeyEsc || k.Kind == screen.KeyRune && (k.Rune == 'n' || k.Rune == 'N'):
		a.showHealth()
	}
}
