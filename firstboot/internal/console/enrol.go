package console

import (
	"context"
	"fmt"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// enrolView takes a new enrolment or recovery token from the health screen
// (R) or the needs-recovery screen, hands it to the connector and follows
// the connector until it is Online or gives up.
type enrolView struct {
	f        *form
	recovery bool
	phase    int // 0 typing, 1 working, 2 done, 3 failed
	state    string
	msg      string
	hint     string
}

func newEnrolView(a *App, recovery bool) *enrolView {
	v := &enrolView{recovery: recovery}
	v.f = &form{fields: []*field{{label: "Token", kind: fieldToken, check: checkTokenOrPair,
		note: "No token at hand? Type P and press Enter to pair with a code instead."}}}
	v.f.done = func(a *App) { v.submit(a) }
	v.f.back = func(a *App) { a.showHealth() }
	return v
}

func (v *enrolView) submit(a *App) {
	if pairKey(v.f.fields[0].value) {
		v.f.fields[0].value = ""
		a.show(newPairView(a, v.recovery, func(a *App) {
			if v.recovery {
				a.showHealth() // the needs-recovery page, while the connector needs recovery
				return
			}
			a.show(v)
		}))
		return
	}
	token := canonical(v.f.fields[0].value)
	v.f.fields[0].value = "" // forget the typed token
	v.phase, v.state = 1, "handing the token to the connector"
	// Follow the outcome on this view: the status turning Online must not
	// swap the result away (the needs-recovery page draws only while the
	// state is needs_recovery).
	a.show(v)
	goDo(a, func(ctx context.Context) enrolResult {
		if err := a.env.Connector.SubmitToken(ctx, token); err != nil {
			msg, hint := apiError(err)
			return enrolResult{msg: msg, hint: hint}
		}
		a.post(func() { v.state = "token accepted, waiting for the connector" })
		st, err := waitOnline(ctx, a.env, func(st localapi.Status) {
			a.post(func() { v.state = state.LabelOf(st.State) })
		})
		if err != nil {
			return enrolResult{msg: err.Error(), hint: st.Hint}
		}
		return enrolResult{ok: true, st: st}
	}, func(r enrolResult) {
		if r.ok {
			v.phase, v.msg = 2, fmt.Sprintf("%s is Online (ID %s).", r.st.ConnectorName, r.st.ConnectorID)
			a.health.dismissed = ""
			return
		}
		v.phase, v.msg, v.hint = 3, r.msg, r.hint
	})
}

type enrolResult struct {
	ok        bool
	st        localapi.Status
	msg, hint string
}

func (v *enrolView) draw(a *App) page {
	title := "Re-enrol"
	if v.recovery {
		title = "Recover"
	}
	p := page{title: title}
	p.body = append(p.body, a.wrap(2, "Use this to recover a connector whose identity is lost or revoked, or to enrol it again. "+
		"In the VaultPAM dashboard open Connectors, select this connector and choose Recover: it shows a recovery token "+
		"(20 characters, valid for 1 hour, works once). The connector keeps its ID, so the resources that route through it "+
		"keep working; its old certificate is revoked. A new connector needs a token from Connectors -> Add Connector instead.")...)
	p.body = append(p.body, blank())
	switch v.phase {
	case 0:
		p.body = append(p.body, v.f.lines(a)...)
		p.msg = v.f.message()
		p.help = "Enter submit  Backspace erase  Ctrl-U clear  Esc back"
	case 1:
		p.body = append(p.body, bold("  Working: "+v.state))
		p.help = "Please wait"
	case 2:
		p.body = append(p.body, bold("  Done: "+v.msg))
		p.help = "Enter health screen"
	case 3:
		p.body = append(p.body, bold("  Failed: "+v.msg))
		if v.hint != "" {
			p.body = append(p.body, a.wrap(2, "hint: "+v.hint)...)
		}
		p.help = "T try another token  Esc health screen"
	}
	return p
}

func (v *enrolView) key(a *App, k screen.Key) {
	switch v.phase {
	case 0:
		v.f.key(a, k)
	case 2:
		if k.Kind == screen.KeyEnter {
			a.showHealth()
		}
	case 3:
		switch {
		case k.Kind == screen.KeyEsc:
			a.showHealth()
		case k.Kind == screen.KeyRune && (k.Rune == 't' || k.Rune == 'T'):
			v.phase, v.f.errs = 0, nil
		}
	}
}
