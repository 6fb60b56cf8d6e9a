// Package console is vaultpam-console: the first-boot wizard and the health
// screen shown on the appliance's VGA console and serial line. It owns no
// terminal details (package screen draws) and reaches the outside world only
// through Env, so tests run it against a temp root, a fake connector and
// fake system commands.
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/ovfenv"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// Connector is the part of the connector's local API the console uses.
// *localapi.Client implements it.
type Connector interface {
	Status(ctx context.Context) (localapi.Status, error)
	SubmitToken(ctx context.Context, token string) error
}

// Runner runs a system command (systemctl, journalctl, hostname, …) and
// returns its standard output. Commands never carry secrets in argv.
type Runner interface {
	Output(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec. BinDir, when set, is where the
// commands are looked up instead of $PATH (tests put fakes there).
type ExecRunner struct{ BinDir string }

// Output implements Runner.
func (r ExecRunner) Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	if r.BinDir != "" {
		name = filepath.Join(r.BinDir, name)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return out, fmt.Errorf("%s %s: %s", filepath.Base(name), strings.Join(args, " "), strings.TrimSpace(string(ee.Stderr)))
		}
		return out, fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out, nil
}

// Env is the outside world of the console.
type Env struct {
	Root      string // prefix for /config, /data, /run, /etc, /proc; "/" on the appliance
	TTY       string // this console's name, shown on the other console ("tty1")
	Connector Connector
	Net       netinfo.Source
	Run       Runner
	Now       func() time.Time
	OVF       ovfenv.Sources
	// DefaultURL pre-fills the control plane URL; "" = settings.DefaultControlPlaneURL.
	DefaultURL string
	Probes     Probes // appliance facts for the health screen; nil fields = real ones
	// Timeouts; zero values take the defaults in DefaultEnvTimeouts.
	AddressTimeout time.Duration // waiting for an address after apply
	StepTimeout    time.Duration // each diagnostic step
	EnrolTimeout   time.Duration // waiting for the connector to be Online
	// Repaint: each value received repaints the whole screen, like Ctrl-L.
	// The command sends SIGWINCH here: the terminal was resized, or another
	// program wrote on it (the boot report on the serial console does, and
	// then signals the console).
	Repaint <-chan os.Signal
}

func (e *Env) defaults() {
	if e.Root == "" {
		e.Root = "/"
	}
	if e.TTY == "" {
		e.TTY = "console"
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Net == nil {
		e.Net = netinfo.Netlink{}
	}
	if e.Run == nil {
		e.Run = ExecRunner{}
	}
	if e.DefaultURL == "" {
		e.DefaultURL = settings.DefaultControlPlaneURL
	}
	if e.AddressTimeout == 0 {
		e.AddressTimeout = 60 * time.Second
	}
	if e.StepTimeout == 0 {
		e.StepTimeout = 5 * time.Second
	}
	if e.EnrolTimeout == 0 {
		e.EnrolTimeout = 2 * time.Minute
	}
}

// path returns p (absolute on the appliance) under the root.
func (e *Env) path(p string) string { return filepath.Join(e.Root, p) }

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
}

// New returns an app over env.
func New(env Env) *App {
	env.defaults()
	a := &App{env: env, posts: make(chan func(), 64), probes: env.Probes}
	a.probes.defaults(&a.env)
	return a
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

// start picks the first screen: the health screen when the appliance is
// configured, else the wizard (or, when another console holds the wizard,
// a screen that follows its progress).
func (a *App) start() {
	if settings.Configured(a.env.Root) {
		a.showHealth()
		return
	}
	a.startWizard(false)
}

func (a *App) frame() *screen.Frame {
	p := a.cur.draw(a)
	var f screen.Frame
	title := " VaultPAM Connector"
	if p.title != "" {
		title += " - " + p.title
	}
	right := fmt.Sprintf("%s ", a.env.TTY)
	f.Add(screen.Span{Text: screen.Pad(title, screen.Cols-len(right)) + right, Attr: screen.Reverse})
	f.Blank()
	msg := screen.WrapText(p.msg, screen.Cols-2)
	if p.msg == "" {
		msg = nil
	}
	if len(msg) > 2 {
		msg = msg[:2]
	}
	for _, l := range p.body {
		if f.Len() >= screen.Rows-1-len(msg) {
			break
		}
		f.Add(l...)
	}
	f.Fill(screen.Rows - 1 - len(msg))
	for _, l := range msg {
		f.Add(screen.Span{Text: " " + l, Attr: screen.Bold})
	}
	f.Add(screen.Span{Text: screen.Pad(" "+p.help, screen.Cols), Attr: screen.Reverse})
	return &f
}

// Body-building helpers.

func text(s string) screen.Line { return screen.Line{{Text: s}} }
func bold(s string) screen.Line { return screen.Line{{Text: s, Attr: screen.Bold}} }
func blank() screen.Line        { return nil }

func wrap(indent int, s string) []screen.Line {
	var out []screen.Line
	for _, l := range screen.WrapText(s, screen.Cols-indent-2) {
		out = append(out, text(strings.Repeat(" ", indent)+l))
	}
	return out
}

// kv is a "  Label ........ value" line.
func kv(label, value string) screen.Line {
	return screen.Line{{Text: "  " + screen.Pad(label, 22)}, {Text: value}}
}

// kvWrap is kv with the value wrapped under itself.
func kvWrap(label, value string) []screen.Line {
	var out []screen.Line
	for i, l := range screen.WrapText(value, screen.Cols-26) {
		if i == 0 {
			out = append(out, kv(label, l))
		} else {
			out = append(out, kv("", l))
		}
	}
	return out
}
