package console

import (
	"context"
	"fmt"

	"github.com/vaultpam/appliance/firstboot/internal/diag"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// diagView runs the control plane diagnostics with the saved settings.
type diagView struct {
	results []diag.Result
	running bool
}

func newDiagView(a *App) *diagView {
	v := &diagView{}
	v.run(a)
	return v
}

func (v *diagView) run(a *App) {
	v.running, v.results = true, nil
	s := settings.Load(a.env.Root)
	cfg := diagConfig(a.env, s)
	goDo(a, func(ctx context.Context) []diag.Result {
		return diag.Run(ctx, cfg, func(r diag.Result) {
			a.post(func() { v.results = append(v.results, r) })
		})
	}, func([]diag.Result) { v.running = false })
}

func (v *diagView) draw(a *App) page {
	body := []screen.Line{text("  Checking the way to " + settings.Load(a.env.Root).ControlPlaneURL), blank()}
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
	p := page{title: "Diagnostics", body: body, help: "R run again  N edit network  Esc back"}
	switch f, bad := diag.Failed(v.results); {
	case v.running:
		p.msg, p.help = "Running...", "Please wait"
	case bad:
		body = append(body, blank())
		for _, l := range screen.WrapText(f.Message, a.width()-4) {
			body = append(body, bold("  "+l))
		}
		if f.Untrusted && f.Root() != nil {
			body = append(body, blank())
			body = append(body, chainLines(a, f)...)
			p.help = "T trust this root  R run again  N edit network  Esc back"
		}
		p.body = body
		p.msg = "The " + f.Step + " step failed."
	default:
		p.msg = "All checks passed."
	}
	return p
}

func (v *diagView) key(a *App, k screen.Key) {
	if v.running {
		return
	}
	switch {
	case k.Kind == screen.KeyEsc:
		a.showHealth()
	case k.Kind == screen.KeyRune && (k.Rune == 'r' || k.Rune == 'R'):
		v.run(a)
	case k.Kind == screen.KeyRune && (k.Rune == 'n' || k.Rune == 'N'):
		a.startWizard(true)
	case k.Kind == screen.KeyRune && (k.Rune == 't' || k.Rune == 'T'):
		if f, bad := diag.Failed(v.results); bad && f.Untrusted && f.Root() != nil {
			a.show(&trustView{root: f.Root(), back: v, done: func(a *App) { a.show(v); v.run(a) }})
		}
	}
}
