package console

// Pairing with a code instead of a typed token (connector/README.md,
// "Pairing"): the console asks the connector to pair (POST /v1/pair) and
// shows what the connector's status holds — the user code in large
// characters, the verification URL and a QR code of the URL with the code
// filled in — until an administrator approves or denies it. A code that
// expires is replaced by the connector; the screen says so and shows the
// new one. Only public things are shown: the device code and the token the
// approval brings never leave the connector.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/qrtext"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// Pairer is the pairing part of the connector's local API.
// *localapi.Client implements it.
type Pairer interface {
	StartPairing(ctx context.Context) (localapi.Pairing, error)
	StopPairing(ctx context.Context) error
}

// pairerOf returns the connector's pairing API, if it has one.
func pairerOf(env Env) (Pairer, bool) {
	p, ok := env.Connector.(Pairer)
	return p, ok
}

// pairKey is what an operator types into a token field to pair instead
// ("P", then Enter). A token is 20 characters, so the one-character entry
// is never a token, and a token that begins with P is still typed as is.
func pairKey(v string) bool { return v == "P" }

// pairPhase is where a pairing stands, as the screen tells it.
type pairPhase int

const (
	pairAsking   pairPhase = iota // no code yet: the connector is asking the control plane for one
	pairWaiting                   // a code is shown, waiting for an administrator
	pairExpired                   // the code shown expired; a new one is on its way
	pairDenied                    // an administrator denied the code
	pairStopped                   // the pairing ended otherwise (stopped, a token handed over)
	pairApproved                  // approved: enrolling, connecting
	pairOnline                    // enrolled and Online
)

// pairWatch follows a pairing through the connector's status. It lives on
// the app's goroutine.
type pairWatch struct {
	st      localapi.Status
	stErr   error
	busy    bool              // a status request is under way
	seen    bool              // the connector was seen pairing
	code    *localapi.Pairing // the code last shown
	expired string            // a code that expired while shown, for the note
}

// refresh asks the connector for its status in the background, unless a
// request is under way.
func (w *pairWatch) refresh(a *App) {
	if w.busy {
		return
	}
	w.busy = true
	goDo(a, func(ctx context.Context) statusResult {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := a.env.Connector.Status(ctx)
		return statusResult{st, err}
	}, func(r statusResult) {
		w.busy = false
		w.update(r.st, r.err)
	})
}

// update takes a status in.
func (w *pairWatch) update(st localapi.Status, err error) {
	if err != nil {
		w.stErr = err
		return
	}
	w.st, w.stErr = st, nil
	if st.State != state.Pairing.String() {
		return
	}
	w.seen = true
	if p := st.Pairing; p != nil {
		if w.code != nil && w.code.UserCode != p.UserCode {
			w.expired = w.code.UserCode
		}
		c := *p
		w.code = &c
	}
}

// phase says where the pairing stands at now.
func (w *pairWatch) phase(now time.Time) pairPhase {
	switch w.st.State {
	case state.Pairing.String():
		switch {
		case w.st.Pairing == nil && w.code != nil:
			return pairExpired
		case w.st.Pairing == nil:
			return pairAsking
		case !now.Before(w.st.Pairing.ExpiresAt):
			return pairExpired
		}
		return pairWaiting
	case state.Enrolling.String(), state.Connecting.String(), state.Reconnecting.String():
		if w.seen {
			return pairApproved
		}
	case state.Online.String():
		if w.seen {
			return pairOnline
		}
	case state.AwaitingToken.String(), state.NeedsRecovery.String():
		if !w.seen {
			return pairAsking
		}
		if strings.Contains(w.st.Reason, "denied") {
			return pairDenied
		}
		return pairStopped
	}
	return pairAsking
}

// qrWidth is the widest QR code drawn beside the text.
const qrWidth = 41

// qrLines draws url as a QR code that fits rows rows, with the standard
// quiet zone when it fits and a narrower one (2 modules, still read by
// phones) when not; nil when it cannot be drawn in rows.
func qrLines(url string, rows int) []string {
	c, err := qrtext.Encode(url, qrtext.Low)
	if err != nil {
		return nil
	}
	for _, q := range []int{qrtext.DefaultQuiet, 2} {
		l := c.Lines(qrtext.Options{Quiet: q})
		if len(l) <= rows && len([]rune(l[0])) <= qrWidth {
			return l
		}
	}
	return nil
}

// qr0 is the QR code's first line, or "" without one.
func qr0(qr []string) string {
	if len(qr) == 0 {
		return ""
	}
	return qr[0]
}

// countdown says how long the code is still valid: "9:41".
func countdown(now, until time.Time) string {
	d := until.Sub(now).Truncate(time.Second)
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// codeGroups splits a user code for two lines of large characters.
func codeGroups(code string) []string {
	if a, b, ok := strings.Cut(code, "-"); ok {
		return []string{a, b}
	}
	if len(code) > 5 {
		return []string{code[:len(code)/2], code[len(code)/2:]}
	}
	return []string{code}
}

// body draws the pairing: the QR code on the left and the code, the URL,
// the countdown and where it stands on the right; without a code (asking,
// expired, denied, done) only the text. what is the first line ("Pair
// this connector", "Recover this connector").
func (w *pairWatch) body(a *App, what string) (body []screen.Line, msg string) {
	now := a.env.Now()
	ph := w.phase(now)
	var right []screen.Line
	var qr []string
	code := ""
	if w.code != nil {
		code = w.code.UserCode
	}
	switch ph {
	case pairWaiting:
		p := w.st.Pairing
		// Rows for the body: the screen less the title bar, the blank
		// under it, the key help and two rows of message.
		qr = qrLines(p.VerificationURLComplete, a.size.Rows-5)
		right = append(right, bold(what), blank())
		for _, g := range codeGroups(p.UserCode) {
			for _, l := range bigText(g) {
				right = append(right, bold(l))
			}
			right = append(right, blank())
		}
		right = append(right, text("Code "+p.UserCode+", valid for "+countdown(now, p.ExpiresAt)))
		right = append(right, text("Approve it in the VaultPAM dashboard at"))
		for u := p.VerificationURL; u != ""; {
			n := min(len(u), a.width()-4-len([]rune(qr0(qr))))
			right = append(right, text(u[:n]))
			u = u[n:]
		}
		if qr != nil {
			right = append(right, text("or scan the QR code with a phone."))
		}
		right = append(right, blank(), bold("Waiting for approval..."))
		if w.expired != "" {
			msg = "Code " + w.expired + " expired; this is a new code."
		}
	case pairAsking:
		right = append(right, bold(what), blank(), bold("Asking the control plane for a code..."))
		if w.st.Reason != "" && w.st.State == state.Pairing.String() {
			msg = capitalize(w.st.Reason)
		}
	case pairExpired:
		right = append(right, bold(what), blank(), bold("Code "+code+" expired."), text("A new code follows by itself..."))
		if w.st.Reason != "" {
			msg = capitalize(w.st.Reason)
		}
	case pairDenied:
		right = append(right, bold(what), blank(), bold("Denied: code "+code+" was not approved."))
		msg = capitalize(w.st.Reason)
	case pairStopped:
		right = append(right, bold(what), blank(), bold("Pairing ended."))
		msg = capitalize(w.st.Reason)
	case pairApproved:
		right = append(right, bold(what), blank(), bold("Approved: code "+code+"."), text(state.LabelOf(w.st.State)+"..."))
	case pairOnline:
		right = append(right, bold(what), blank(), bold("Approved: code "+code+"."),
			bold(fmt.Sprintf("%s is Online (ID %s).", firstOf(w.st.ConnectorName, "The connector"), orDash(w.st.ConnectorID))))
	}
	if w.stErr != nil {
		msg = "Connector status: " + w.stErr.Error()
	}
	if qr == nil {
		// Text only, in the body's column.
		for _, l := range right {
			body = append(body, append(screen.Line{{Text: "  "}}, l...))
		}
		return body, msg
	}
	qw := len([]rune(qr[0]))
	for i := 0; i < max(len(qr), len(right)); i++ {
		left := strings.Repeat(" ", qw)
		if i < len(qr) {
			left = qr[i]
		}
		l := screen.Line{{Text: " " + left + "  "}}
		if i < len(right) {
			l = append(l, right[i]...)
		}
		body = append(body, l)
	}
	return body, msg
}

// followPage is the pairing screen of a console that did not start the
// pairing (the other console ran the setup): shown while the connector
// shows a code, with help as the key help; false otherwise.
func (w *pairWatch) followPage(a *App, help string) (page, bool) {
	if w.st.State != state.Pairing.String() || w.st.Pairing == nil || w.stErr != nil {
		return page{}, false
	}
	w.seen = true
	p := page{title: "Pair with a code", help: help}
	p.body, p.msg = w.body(a, "Pair this connector with a code")
	return p, true
}

// pairView is a pairing started from the health screen (R, re-enrol) or
// the needs-recovery page: it asks the connector to pair and follows it
// until the connector is Online, the code is denied or the operator
// cancels (Esc or C: DELETE /v1/pair), which goes back.
type pairView struct {
	watch    pairWatch
	recovery bool
	starting bool   // POST /v1/pair under way
	left     bool   // the operator left while it was: stop it when it answers
	failed   string // the connector refused to pair
	hint     string
	back     func(a *App) // Esc, C and T: the token input this came from
}

// newPairView starts pairing and returns the view that shows it.
func newPairView(a *App, recovery bool, back func(a *App)) *pairView {
	v := &pairView{recovery: recovery, back: back}
	v.start(a)
	return v
}

func (v *pairView) start(a *App) {
	p, ok := pairerOf(a.env)
	if !ok {
		v.failed, v.hint = "this connector cannot pair", "type a token instead"
		return
	}
	v.watch = pairWatch{}
	v.starting, v.failed, v.hint = true, "", ""
	goDo(a, func(ctx context.Context) error {
		_, err := p.StartPairing(ctx)
		return err
	}, func(err error) {
		v.starting = false
		if v.left && err == nil {
			stopPairing(a)
			return
		}
		if err != nil {
			v.failed, v.hint = apiError(err)
			return
		}
		v.watch.seen = true // the connector answered: it is pairing
		v.watch.refresh(a)
	})
}

func (v *pairView) tick(a *App) {
	if !v.starting && v.failed == "" && v.watch.phase(a.env.Now()) != pairOnline {
		v.watch.refresh(a)
	}
}

func (v *pairView) what() string {
	if v.recovery {
		return "Recover this connector with a code"
	}
	return "Pair this connector with a code"
}

func (v *pairView) draw(a *App) page {
	p := page{title: "Pair with a code"}
	if v.failed != "" {
		p.body = append(p.body, bold("  "+v.what()), blank(), bold("  Pairing failed: "+v.failed))
		if v.hint != "" {
			p.body = append(p.body, a.wrap(2, "hint: "+v.hint)...)
		}
		p.help = "P try again  Esc type a token instead"
		return p
	}
	p.body, p.msg = v.watch.body(a, v.what())
	if v.starting {
		p.body, p.msg = []screen.Line{bold("  " + v.what()), blank(), bold("  Asking the connector for a code...")}, ""
	}
	switch v.watch.phase(a.env.Now()) {
	case pairDenied, pairStopped:
		p.help = "P ask for a new code  Esc type a token instead"
	case pairApproved:
		p.help = "Please wait"
	case pairOnline:
		p.help = "Enter health screen"
	default:
		p.help = "Esc cancel (C too) and type a token instead"
	}
	return p
}

func (v *pairView) key(a *App, k screen.Key) {
	ph := v.watch.phase(a.env.Now())
	cancel := k.Kind == screen.KeyEsc || k.Kind == screen.KeyRune && (k.Rune == 'c' || k.Rune == 'C')
	again := k.Kind == screen.KeyRune && (k.Rune == 'p' || k.Rune == 'P')
	switch {
	case v.failed != "" && again:
		v.start(a)
	case v.failed != "" && k.Kind == screen.KeyEsc:
		v.back(a)
	case ph == pairOnline && k.Kind == screen.KeyEnter:
		a.health.dismissed = ""
		a.showHealth()
	case (ph == pairDenied || ph == pairStopped) && again:
		v.start(a)
	case (ph == pairDenied || ph == pairStopped) && k.Kind == screen.KeyEsc:
		v.back(a)
	case (ph == pairAsking || ph == pairWaiting || ph == pairExpired) && cancel:
		if v.starting {
			v.left = true
		} else {
			stopPairing(a)
		}
		v.back(a)
	}
}

// stopPairing ends the pairing under way (DELETE /v1/pair) in the
// background; the connector goes back to where it was.
func stopPairing(a *App) {
	p, ok := pairerOf(a.env)
	if !ok {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
		defer cancel()
		p.StopPairing(ctx)
	}()
}
