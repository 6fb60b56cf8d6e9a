// Package console is vaultpam-console: the first-boot wizard and the health
// screen shown on the appliance's VGA console and serial line. It owns no
// terminal details (package screen draws) and reaches the outside world only
// through Env, so tests run it against a temp root, a fake connector and
// fake system commands.
package console

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// view is one screen: it draws itself and handles keys. Views run on the
// app's single goroutine; background work reports back through App.post.
type view interface {
	draw(a *App) page
	key(a *App, k screen.Key)
}

// ticker is a view that wants a call every second (live refresh).
type ticker interface{ tick(a *App) }

// page is what a view draws between the title bar and the key help.
type page struct {
	title string
	body  []screen.Line
	msg   string // shown above the key help, bold: a problem or a prompt
	help  string // keys, e.g. "Enter next  Esc back"
}

// App is the running console. It is driven by Run and is not safe for
// concurrent use except through post.
type App struct {
	env    Env
	cur    view
	posts  chan func()
	ctx    context.Context
	lock   *wizardLock
	quit   bool
	health *health
	probes Probes
	size   screen.Size // the frame's: the terminal's, at least 80×24
}

// New returns an app over env.
func New(env Env) *App {
	env.defaults()
	a := &App{env: env, posts: make(chan func(), 64), probes: env.Probes}
	a.probes.defaults(&a.env)
	a.resize()
	return a
}

// resize lays the screens out for the terminal's size now.
func (a *App) resize() {
	var s screen.Size
	if a.env.Size != nil {
		s = a.env.Size()
	}
	a.size = screen.Fit(s)
}

// post runs fn on the app's goroutine (from background work). It never
// blocks the caller for long: the app drains posts continuously.
func (a *App) post(fn func()) {
	select {
	case a.posts <- fn:
	case <-a.ctx.Done():
	}
}

// goDo runs work in the background and posts done with its result.
func goDo[T any](a *App, work func(ctx context.Context) T, done func(T)) {
	go func() {
		v := work(a.ctx)
		a.post(func() { done(v) })
	}()
}

func (a *App) show(v view) { a.cur = v }

// Run shows the console on in/out until ctx ends or the input closes.
func (a *App) Run(ctx context.Context, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.ctx = ctx
	defer func() {
		if a.lock != nil {
			a.lock.release()
		}
	}()
	r := screen.NewRenderer(out)
	defer r.Restore()
	keys := screen.ReadKeys(in)
	a.start()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for !a.quit {
		if err := r.Draw(a.frame()); err != nil {
			return fmt.Errorf("drawing: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case k, ok := <-keys:
			if !ok {
				return nil
			}
			if k.Kind == screen.KeyCtrlL {
				r.Invalidate()
				continue
			}
			a.cur.key(a, k)
		case <-a.env.Repaint:
			a.resize()
			r.Invalidate()
		case fn := <-a.posts:
			fn()
		case <-t.C:
			if tk, ok := a.cur.(ticker); ok {
				tk.tick(a)
			}
		}
	}
	return nil
}

// start picks the first screen: where an unattended setup stopped (until
// an operator acts on it), the health screen when the appliance is
// configured, else the wizard (or, when another console holds the wizard,
// a screen that follows its progress).
func (a *App) start() {
	if rec, busy := otherHolder(a.env.Root); busy && a.lock == nil {
		// Also when the other console's setup has written the settings
		// already: this one shows how it ends.
		a.show(&waitingView{rec: rec})
		return
	}
	if rec := readRecord(a.env.Root); rec.stoppedUnattended() {
		a.show(&stoppedView{rec: rec})
		return
	}
	if settings.Configured(a.env.Root) {
		a.showHealth()
		return
	}
	a.startWizard(false)
}

// frame lays the current view out: the title bar on the first row and the
// key help on the last, both across the whole width; the body and the
// message in a column at most maxTextCols wide, centred.
func (a *App) frame() *screen.Frame {
	p := a.cur.draw(a)
	f := screen.NewFrame(a.size)
	cols, rows := a.size.Cols, a.size.Rows
	margin := strings.Repeat(" ", a.margin())
	bar := func(left, right string) screen.Span {
		return screen.Span{Text: screen.Pad(margin+left, cols-len(right)-len(margin)) + right + margin, Attr: screen.Reverse}
	}
	title := " VaultPAM Connector"
	if p.title != "" {
		title += " - " + p.title
	}
	f.Add(bar(title, a.env.TTY+" "))
	f.Blank()
	msg := screen.WrapText(p.msg, a.width()-2)
	if p.msg == "" {
		msg = nil
	}
	if len(msg) > 2 {
		msg = msg[:2]
	}
	for _, l := range p.body {
		if f.Len() >= rows-1-len(msg) {
			break
		}
		f.Add(append(screen.Line{{Text: margin}}, l...)...)
	}
	f.Fill(rows - 1 - len(msg))
	for _, l := range msg {
		f.Add(screen.Span{Text: margin + " " + l, Attr: screen.Bold})
	}
	f.Add(bar(" "+p.help, ""))
	return f
}
