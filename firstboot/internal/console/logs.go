package console

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// logsView shows the connector's recent journal, scrollable. Long entries
// continue on the next rows, indented; the rows follow the screen's width
// and the page its height.
type logsView struct {
	entries []string
	err     string
	loading bool
	top     int // first row shown
}

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
		v.entries = nil
		if out := strings.TrimRight(r.out, "\n"); out != "" {
			v.entries = strings.Split(out, "\n")
		}
		v.top = max(0, len(v.rows(a))-v.page(a)) // newest at the bottom, in view
	})
}

type logsResult struct {
	out string
	err error
}

// page is how many rows of the journal fit on the screen.
func (v *logsView) page(a *App) int { return a.size.Rows - 5 }

// rows are the entries broken at the screen's width.
func (v *logsView) rows(a *App) []string {
	width := a.width()
	var out []string
	for _, e := range v.entries {
		r := []rune(strings.ReplaceAll(e, "\t", " "))
		for first := true; len(r) > 0; first = false {
			w, prefix := width, ""
			if !first {
				w, prefix = width-4, "    "
			}
			n := min(w, len(r))
			out = append(out, prefix+string(r[:n]))
			r = r[n:]
		}
	}
	return out
}

func (v *logsView) draw(a *App) page {
	rows, n := v.rows(a), v.page(a)
	top := min(v.top, max(0, len(rows)-n))
	var body []screen.Line
	for i := top; i < len(rows) && i < top+n; i++ {
		body = append(body, text(rows[i]))
	}
	msg := v.err
	switch {
	case v.loading:
		msg = "Reading the journal..."
	case msg == "" && len(rows) == 0:
		msg = "The journal has no entries for vaultpam-connector."
	case msg == "":
		msg = fmt.Sprintf("Rows %d-%d of %d (last 200 entries, newest at the bottom)", top+1, min(top+n, len(rows)), len(rows))
	}
	return page{title: "Connector logs", body: body, msg: msg, help: "Up/Down PgUp/PgDn scroll  R reload  Esc back"}
}

func (v *logsView) key(a *App, k screen.Key) {
	n := v.page(a)
	maxTop := max(0, len(v.rows(a))-n)
	v.top = min(v.top, maxTop)
	switch k.Kind {
	case screen.KeyEsc:
		a.showHealth()
	case screen.KeyUp:
		v.top = max(0, v.top-1)
	case screen.KeyDown:
		v.top = min(maxTop, v.top+1)
	case screen.KeyPgUp:
		v.top = max(0, v.top-n)
	case screen.KeyPgDown:
		v.top = min(maxTop, v.top+n)
	case screen.KeyRune:
		if k.Rune == 'r' || k.Rune == 'R' {
			v.load(a)
		}
	}
}
