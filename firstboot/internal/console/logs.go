package console

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vaultpam/appliance/firstboot/internal/screen"
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
