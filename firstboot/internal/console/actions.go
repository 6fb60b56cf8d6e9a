package console

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vaultpam/appliance/firstboot/internal/diag"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// logsView shows the connector's recent journal, scrollable.
type logsView struct {
	lines   []string
	err     string
	loading bool
	top     int
}

const logPage = screen.Rows - 5

func newLogsView(a *App) *logsView {
	v := &logsView{loading: true}
	v.load(a)
	return v
}

func (v *logsView) load(a *App) {
	v.loading = true
	goDo(a, func(ctx context.Context) logsResult {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := a.env.Run.Output(ctx, "journalctl", "-u", "vaultpam-connector", "-n", "200", "--no-pager", "-o", "short-iso")
		return logsResult{string(out), err}
	}, func(r logsResult) {
		v.loading = false
		v.err = ""
		if r.err != nil {
			v.err = "error: reading the journal: " + r.err.Error()
		}
		v.lines = nil
		for _, l := range strings.Split(strings.TrimRight(r.out, "\n"), "\n") {
			// Long journal lines continue on the next rows, indented.
			r := []rune(strings.ReplaceAll(l, "\t", " "))
			for first := true; len(r) > 0; first = false {
				w := screen.Cols
				prefix := ""
				if !first {
					w, prefix = screen.Cols-4, "    "
				}
				n := min(w, len(r))
				v.lines = append(v.lines, prefix+string(r[:n]))
				r = r[n:]
			}
		}
		v.top = max(0, len(v.lines)-logPage) // newest at the bottom, in view
	})
}

type logsResult struct {
	out string
	err error
}

func (v *logsView) draw(a *App) page {
	var body []screen.Line
	for i := v.top; i < len(v.lines) && i < v.top+logPage; i++ {
		body = append(body, text(v.lines[i]))
	}
	msg := v.err
	switch {
	case v.loading:
		msg = "Reading the journal..."
	case msg == "" && len(v.lines) == 0:
		msg = "The journal has no entries for vaultpam-connector."
	case msg == "":
		msg = fmt.Sprintf("Rows %d-%d of %d (last 200 entries, newest at the bottom)", v.top+1, min(v.top+logPage, len(v.lines)), len(v.lines))
	}
	return page{title: "Connector logs", body: body, msg: msg, help: "Up/Down PgUp/PgDn scroll  R reload  Esc back"}
}

func (v *logsView) key(a *App, k screen.Key) {
	maxTop := max(0, len(v.lines)-logPage)
	switch k.Kind {
	case screen.KeyEsc:
		a.showHealth()
	case screen.KeyUp:
		v.top = max(0, v.top-1)
	case screen.KeyDown:
		v.top = min(maxTop, v.top+1)
	case screen.KeyPgUp:
		v.top = max(0, v.top-logPage)
	case screen.KeyPgDown:
		v.top = min(maxTop, v.top+logPage)
	case screen.KeyRune:
		if k.Rune == 'r' || k.Rune == 'R' {
			v.load(a)
		}
	}
}

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
		body = append(body, text(fmt.Sprintf("  %s %s", st.mark(), clipText(r.Message, screen.Cols-10))))
	}
	p := page{title: "Diagnostics", body: body, help: "R run again  N edit network  Esc back"}
	switch f, bad := diag.Failed(v.results); {
	case v.running:
		p.msg, p.help = "Running...", "Please wait"
	case bad:
		body = append(body, blank())
		for _, l := range screen.WrapText(f.Message, screen.Cols-4) {
			body = append(body, bold("  "+l))
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
	}
}

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
	body = append(body, wrap(2, v.note)...)
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
