package console

import (
	"context"
	"fmt"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/ovfenv"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// wizard holds what the operator has answered so far. The token lives only
// here, in memory, in canonical form; it is handed to the connector and
// never written anywhere.
type wizard struct {
	s           settings.Settings
	token       string
	networkOnly bool   // edit network from the health screen: no control plane, no token
	ovfSource   string // where deployment settings came from, "" if none
	unattended  bool   // skip steps whose answers are already valid
	// auto: applying the OVF environment with nobody at the console. A
	// failure then stops on both consoles (stoppedView) and nothing is
	// retried by itself.
	auto bool
	// caProblem: the OVF environment's vaultpam.ca_cert was not usable
	// (what is wrong with it); it was left out, and the summary says so.
	caProblem string
}

// startWizard begins the wizard. The wizard lock is taken only when an
// operator starts (Enter on the welcome screen) or when the OVF
// environment answers everything, so both consoles show the welcome screen
// at boot and whichever the operator uses runs the wizard. networkOnly
// re-runs the network part for the health screen's "edit network".
func (a *App) startWizard(networkOnly bool) {
	w := &wizard{s: settings.Default(), networkOnly: networkOnly}
	w.s.ControlPlaneURL = a.env.DefaultURL
	if networkOnly || settings.Configured(a.env.Root) {
		w.s = settings.Load(a.env.Root)
		w.networkOnly = true
		if a.takeLock() {
			a.lock.start(a.env.TTY, false, "Starting setup")
			w.gotoLinks(a)
		}
		return
	}
	a.show(&messageView{title: "Setup", lines: []string{"Looking for deployment settings (OVF environment)..."}})
	a.readOVF(func(r ovfResult) { w.begin(a, r) })
}

// readOVF reads the OVF environment in the background and calls then with
// what it found.
func (a *App) readOVF(then func(ovfResult)) {
	goDo(a, func(ctx context.Context) ovfResult {
		ctx, cancel := context.WithTimeout(ctx, 10*a.env.StepTimeout)
		defer cancel()
		env, src, err := a.env.OVF.Load(ctx)
		return ovfResult{env, src, err}
	}, then)
}

// takeLock takes the wizard lock, or shows who holds it and returns false.
// It writes no setup record: the caller checks what the last one left,
// then starts its own (a.lock.start).
func (a *App) takeLock() bool {
	if a.lock != nil {
		return true
	}
	l, holder, err := tryLock(a.env.Root)
	switch {
	case err != nil:
		a.show(&messageView{title: "Setup", lines: []string{"error: " + err.Error(), "hint: /run must be writable"}, next: func(a *App) { a.start() }})
		return false
	case l == nil:
		a.show(&waitingView{rec: holder})
		return false
	}
	a.lock = l
	return true
}

// releaseLock gives up the wizard lock, if held.
func (a *App) releaseLock() {
	a.lock.release()
	a.lock = nil
}

type ovfResult struct {
	env ovfenv.Env
	src string
	err error
}

// begin applies the OVF environment (if any) and goes to the first step
// that needs an answer — or straight to apply when nothing is missing.
func (w *wizard) begin(a *App, r ovfResult) {
	w.fromOVF(a, r)
	if w.unattended && w.s.Validate() == nil && w.token != "" {
		w.applyOVF(a)
		return
	}
	if w.unattended && w.s.Validate() == nil && w.withoutToken(a) {
		return
	}
	a.show(&welcomeView{w: w})
}

// fromOVF fills the answers from the OVF environment read into r (if it
// was found), the token too, unless it was already handed over this boot.
func (w *wizard) fromOVF(a *App, r ovfResult) {
	if w.s.Hostname == "" {
		w.s.Hostname = "vaultpam-connector"
	}
	var tok string
	if r.err == nil {
		tok = r.env.Apply(&w.s)
		w.ovfSource = r.src
		w.unattended = true
		if msg := settings.CheckCABundle(w.s.CACert); msg != "" {
			// Not applied unattended with a CA that cannot be used: the
			// operator sees why on the summary, and can trust the chain
			// the TLS check is shown (T) instead.
			w.caProblem, w.s.CACert, w.unattended = msg, "", false
		}
	}
	if w.s.Interface == "" {
		w.s.Interface = defaultLink(a.env.Net)
	}
	if w.s.ConnectorName == "" && w.unattended {
		w.s.ConnectorName = w.s.Hostname
	}
	if _, sent := ovfMark(a.env.Root); sent {
		tok = ""
	}
	if tok != "" {
		if c, err := protocol.ParseToken(tok); err == nil {
			w.token = c
		}
	}
}

// applyOVF applies a complete OVF environment with nobody at the console:
// once a boot, by whichever console takes the lock first. The other one
// follows (waitingView). Under the lock it checks what an earlier attempt
// left: a configured appliance, a stopped unattended setup, or an attempt
// an operator has taken over since; then it does not apply again.
func (w *wizard) applyOVF(a *App) {
	if !a.takeLock() {
		return
	}
	root := a.env.Root
	if readRecord(root).stoppedUnattended() || settings.Configured(root) {
		a.releaseLock()
		a.start()
		return
	}
	if attempted, _ := ovfMark(root); attempted {
		a.releaseLock()
		a.show(&welcomeView{w: w})
		return
	}
	if err := setOVFMark(root, false); err != nil {
		a.releaseLock()
		a.show(&messageView{title: "Setup", lines: []string{"error: recording the unattended setup: " + err.Error(), "hint: /run must be writable"}})
		return
	}
	w.auto = true
	a.lock.start(a.env.TTY, true, "Applying the OVF settings")
	w.apply(a)
}

// progress tells the other console what this one is doing.
func (a *App) progress(lines ...string) {
	a.lock.write(lines)
}

func (w *wizard) stepTitle(n int, what string) string {
	total := 4
	if w.networkOnly {
		total = 2
	}
	return fmt.Sprintf("Setup %d of %d: %s", n, total, what)
}

func (w *wizard) gotoLinks(a *App) {
	if w.unattended && w.s.Check(settings.FieldInterface) == "" {
		if _, ok := netinfo.Find(a.env.Net, w.s.Interface); ok {
			w.gotoNetwork(a)
			return
		}
	}
	a.progress("Choosing the network card")
	a.show(&linksView{w: w})
}

func (w *wizard) gotoNetwork(a *App) {
	f := w.networkForm()
	if w.unattended && allValid(f) {
		if more := w.moreForm(); !allValid(more) {
			a.progress("Network settings")
			a.show(more)
			return
		}
		w.gotoControlPlane(a)
		return
	}
	a.progress("Network settings")
	a.show(f)
}

func (w *wizard) gotoControlPlane(a *App) {
	if w.networkOnly {
		w.gotoSummary(a)
		return
	}
	f := w.controlPlaneForm()
	if w.unattended && allValid(f) {
		w.gotoToken(a)
		return
	}
	a.progress("Control plane")
	a.show(f)
}

func (w *wizard) gotoSummary(a *App) {
	w.unattended = false // from here on every step is shown when revisited
	a.progress("Summary")
	a.show(&summaryView{w: w})
}
