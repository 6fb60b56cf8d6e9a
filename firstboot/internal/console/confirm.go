package console

import (
	"context"

	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// confirmView asks before a destructive action; only Y goes ahead.
type confirmView struct {
	what string
	note string
	cmd  []string
	err  string
	sent bool
}

func (v *confirmView) draw(a *App) page {
	body := []screen.Line{bold("  " + v.what + "?"), blank()}
	body = append(body, a.wrap(2, v.note)...)
	p := page{title: "Confirm", body: body, msg: v.err, help: "Y yes  N or Esc no"}
	if v.sent {
		p.msg, p.help = v.what+": requested.", "Please wait"
	}
	return p
}

func (v *confirmView) key(a *App, k screen.Key) {
	if v.sent {
		return
	}
	switch {
	case k.Kind == screen.KeyRune && (k.Rune == 'y' || k.Rune == 'Y'):
		v.sent = true
		goDo(a, func(ctx context.Context) error {
			_, err := a.env.Run.Output(ctx, v.cmd[0], v.cmd[1:]...)
			return err
		}, func(err error) {
			if err != nil {
				v.sent, v.err = false, "error: "+err.Error()
			}
		})
	case k.Kind == screen.KeyEsc || k.Kind == screen.KeyRune && (k.Rune == 'n' || k.Rune == 'N'):
		a.showHealth()
	}
}
