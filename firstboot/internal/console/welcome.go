package console

import (
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// welcomeView greets the operator on an unconfigured appliance.
type welcomeView struct{ w *wizard }

func (v *welcomeView) draw(a *App) page {
	body := a.wrap(2, "This VaultPAM Connector appliance is not set up yet. The next screens ask for its network "+
		"settings, the VaultPAM control plane it connects out to, and an enrolment token from the VaultPAM "+
		"dashboard (Connectors -> Add Connector) - or, instead of the token, a short code that an administrator "+
		"approves in the dashboard.")
	body = append(body, blank())
	body = append(body, a.wrap(2, "Keys: Enter goes on, Esc goes back, Up/Down move between fields. No mouse is needed.")...)
	if v.w.ovfSource != "" {
		body = append(body, blank())
		body = append(body, a.wrap(2, "Deployment settings were found in the OVF environment ("+v.w.ovfSource+"); "+
			"only what is missing or invalid is asked.")...)
	}
	return page{title: "Welcome", body: body, help: "Enter begin setup"}
}

func (v *welcomeView) tick(a *App) {
	switch {
	case settings.Configured(a.env.Root):
		a.start() // set up from the other console meanwhile
	default:
		if rec, busy := otherHolder(a.env.Root); busy {
			a.show(&waitingView{rec: rec})
		}
	}
}

func (v *welcomeView) key(a *App, k screen.Key) {
	if k.Kind == screen.KeyEnter && a.takeLock() {
		a.lock.start(a.env.TTY, false, "Started setup")
		v.w.gotoLinks(a)
	}
}
