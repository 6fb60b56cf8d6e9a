package console

import (
	"fmt"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// recoveryPage is the guided needs-recovery screen: what happened, what to
// do next, and the recovery token input.
func recoveryPage(a *App) page {
	h := a.health
	st := h.st
	if h.recovery == nil {
		h.recovery = newEnrolView(a, true)
	}
	happened := capitalize(st.Reason)
	if st.Mode == localapi.ModeGuidedRecovery || (!st.DataDurable && st.DataDir != "") {
		happened = "This appliance runs without a persistent DATA partition (/data is tmpfs), so the connector's " +
			"identity (key and certificate) was lost when it restarted."
		if st.Reason != "" {
			happened += " Connector says: " + st.Reason + "."
		}
	}
	if happened == "" {
		happened = "The connector's identity is gone or no longer accepted."
	}
	name := firstOf(st.ConnectorName, h.set.ConnectorName, "this connector")
	body := []screen.Line{screen.Line{{Text: "  " + screen.Pad("State", 21)}, {Text: " Needs recovery ", Attr: screen.Bold | screen.Reverse}}, blank(), bold("  What happened")}
	body = append(body, a.wrap(4, happened)...)
	body = append(body, blank(), bold("  What to do"))
	which := name
	if st.ConnectorID != "" {
		which = fmt.Sprintf("%s (ID %s)", name, st.ConnectorID)
	}
	body = append(body, a.wrap(4, fmt.Sprintf("1. In the VaultPAM dashboard open Connectors, select %s and choose Recover.", which))...)
	body = append(body, a.wrap(4, "2. Type the recovery token below. The connector keeps its ID and its resources; the old certificate is revoked.")...)
	if st.Mode == localapi.ModeGuidedRecovery {
		body = append(body, a.wrap(4, "3. To survive restarts on its own, give the VM a persistent DATA disk.")...)
	}
	body = append(body, blank())
	p := page{title: "Needs recovery", body: body}
	switch v := h.recovery; v.phase {
	case 0:
		p.body = append(p.body, v.f.lines(a)...)
		p.msg = v.f.message()
		p.help = "Enter submit  Ctrl-U clear  Esc health screen"
	default:
		sub := v.draw(a)
		p.body = append(p.body, sub.body[len(sub.body)-1])
		p.help = sub.help
	}
	return p
}

func recoveryKey(a *App, k screen.Key) {
	h := a.health
	v := h.recovery
	if v == nil {
		return
	}
	switch {
	case v.phase == 0 && k.Kind == screen.KeyEsc:
		h.dismissed = state.NeedsRecovery.String()
	case v.phase == 0:
		v.f.key(a, k)
	case v.phase == 1:
	default:
		a.show(v)
		v.key(a, k)
	}
}
