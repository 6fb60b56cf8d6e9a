package console

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/ovfenv"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
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
			w.gotoLinks(a)
		}
		return
	}
	a.show(&messageView{title: "Setup", lines: []string{"Looking for deployment settings (OVF environment)..."}})
	goDo(a, func(ctx context.Context) ovfResult {
		ctx, cancel := context.WithTimeout(ctx, 10*a.env.StepTimeout)
		defer cancel()
		env, src, err := a.env.OVF.Load(ctx)
		return ovfResult{env, src, err}
	}, func(r ovfResult) { w.begin(a, r) })
}

// takeLock takes the wizard lock, or shows who holds it and returns false.
func (a *App) takeLock() bool {
	if a.lock != nil {
		return true
	}
	l, holder, progress, err := tryLock(a.env.Root, a.env.TTY)
	switch {
	case err != nil:
		a.show(&messageView{title: "Setup", lines: []string{"error: " + err.Error(), "hint: /run must be writable"}, next: func(a *App) { a.start() }})
		return false
	case l == nil:
		a.show(&waitingView{holder: holder, progress: progress})
		return false
	}
	a.lock = l
	return true
}

type ovfResult struct {
	env ovfenv.Env
	src string
	err error
}

// begin applies the OVF environment (if any) and goes to the first step
// that needs an answer — or straight to apply when nothing is missing.
func (w *wizard) begin(a *App, r ovfResult) {
	if w.s.Hostname == "" {
		w.s.Hostname = "vaultpam-connector"
	}
	var tok string
	if r.err == nil {
		tok = r.env.Apply(&w.s)
		w.ovfSource = r.src
		w.unattended = true
	}
	if w.s.Interface == "" {
		w.s.Interface = defaultLink(a.env.Net)
	}
	if w.s.ConnectorName == "" && w.unattended {
		w.s.ConnectorName = w.s.Hostname
	}
	if tok != "" {
		if c, err := protocol.ParseToken(tok); err == nil {
			w.token = c
		}
	}
	if w.unattended && w.s.Validate() == nil && w.token != "" {
		if a.takeLock() {
			a.progress("Applying the OVF settings")
			w.apply(a)
		}
		return
	}
	a.show(&welcomeView{w: w})
}

// welcomeView greets the operator on an unconfigured appliance.
type welcomeView struct{ w *wizard }

func (v *welcomeView) draw(a *App) page {
	body := wrap(2, "This VaultPAM Connector appliance is not set up yet. The next screens ask for its network "+
		"settings, the VaultPAM control plane it connects out to, and an enrolment token from the VaultPAM "+
		"dashboard (Connectors -> Add Connector).")
	body = append(body, blank())
	body = append(body, wrap(2, "Keys: Enter goes on, Esc goes back, Up/Down move between fields. No mouse is needed.")...)
	if v.w.ovfSource != "" {
		body = append(body, blank())
		body = append(body, wrap(2, "Deployment settings were found in the OVF environment ("+v.w.ovfSource+"); "+
			"only what is missing or invalid is asked.")...)
	}
	return page{title: "Welcome", body: body, help: "Enter begin setup"}
}

func (v *welcomeView) tick(a *App) {
	switch {
	case settings.Configured(a.env.Root):
		a.start() // set up from the other console meanwhile
	default:
		if _, busy := otherHolder(a.env.Root); busy {
			holder, progress := readProgress(a.env.Root)
			a.show(&waitingView{holder: holder, progress: progress})
		}
	}
}

func (v *welcomeView) key(a *App, k screen.Key) {
	if k.Kind == screen.KeyEnter && a.takeLock() {
		a.progress("Started setup")
		v.w.gotoLinks(a)
	}
}

// defaultLink picks the first link with a carrier, else the first link.
func defaultLink(src netinfo.Source) string {
	ls, err := src.Links()
	if err != nil || len(ls) == 0 {
		return ""
	}
	for _, l := range ls {
		if l.Carrier {
			return l.Name
		}
	}
	return ls[0].Name
}

// progress tells the other console what this one is doing.
func (a *App) progress(lines ...string) {
	if a.lock != nil {
		a.lock.write(a.env.TTY, lines)
	}
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

func (w *wizard) gotoToken(a *App) {
	// A token already typed (or from OVF) is kept when going back to edit
	// other settings; the summary offers 3 to change it.
	if w.token != "" {
		w.gotoSummary(a)
		return
	}
	a.progress("Enrolment token")
	a.show(w.tokenForm())
}

func (w *wizard) gotoSummary(a *App) {
	w.unattended = false // from here on every step is shown when revisited
	a.progress("Summary")
	a.show(&summaryView{w: w})
}

// allValid reports whether every field is valid; if not, the first
// invalid field gets the focus and shows its problem.
func allValid(f *form) bool {
	for i := range f.fields {
		if !f.validate(i) {
			f.focus = i
			return false
		}
	}
	f.errs = nil
	return true
}

func (w *wizard) networkForm() *form {
	static := func() bool { return w.s.DHCP }
	method := &field{label: "Addressing", kind: fieldChoice, choices: []string{"DHCP", "Static"}, value: "DHCP",
		note: "DHCP: address, gateway and DNS come from the network's DHCP server. Static: you type them."}
	if !w.s.DHCP {
		method.value = "Static"
	}
	f := &form{title: w.stepTitle(1, "Network"), intro: fmt.Sprintf("Settings for %s.", w.s.Interface)}
	addr := &field{label: "IP address/prefix", value: w.s.Address, hidden: static, check: settings.CheckCIDR,
		note: "The appliance's address with prefix length, e.g. 192.0.2.10/24."}
	gw := &field{label: "Gateway", value: w.s.Gateway, hidden: static,
		note: "The router for this subnet, e.g. 192.0.2.1."}
	gw.check = func(v string) string { return settings.CheckGateway(v, addr.value) }
	dns := &field{label: "DNS servers", value: w.s.DNS,
		note: "Comma-separated IP addresses. With DHCP, leave empty to use the DHCP server's."}
	dns.check = func(v string) string {
		if method.value == "DHCP" && strings.TrimSpace(v) == "" {
			return ""
		}
		return settings.CheckIPList("DNS servers", v)
	}
	ntp := &field{label: "NTP servers", value: w.s.NTP, check: func(v string) string { return settings.CheckHostList("NTP servers", v) },
		note: "Comma-separated names or addresses; empty uses DHCP's or the default pool. A correct clock is needed for TLS."}
	host := &field{label: "Hostname", value: w.s.Hostname, check: settings.CheckHostname, note: "The appliance's host name, e.g. vaultpam-dc1."}
	proxy := &field{label: "HTTP proxy", value: w.s.Proxy, check: settings.CheckProxy,
		note: "Only if outbound HTTPS must go through a proxy: http://host:port. Empty for direct."}
	f.fields = []*field{method, addr, gw, dns, ntp, host, proxy}
	sync := func() {
		w.s.DHCP = method.value == "DHCP"
		w.s.Address, w.s.Gateway, w.s.DNS, w.s.NTP = strings.TrimSpace(addr.value), strings.TrimSpace(gw.value), dns.value, ntp.value
		w.s.Hostname, w.s.Proxy = strings.TrimSpace(host.value), strings.TrimSpace(proxy.value)
	}
	// hidden() reads w.s.DHCP, so keep it in step with the choice field.
	static = func() bool { return method.value == "DHCP" }
	addr.hidden, gw.hidden = static, static
	f.done = func(a *App) { sync(); w.gotoControlPlane(a) }
	f.back = func(a *App) { sync(); w.unattended = false; a.show(&linksView{w: w}) }
	return f
}

func (w *wizard) controlPlaneForm() *form {
	url := &field{label: "Control plane URL", value: w.s.ControlPlaneURL, check: settings.CheckControlPlaneURL,
		note: "The VaultPAM address this connector connects out to, as shown in the dashboard (https://HOST[:PORT])."}
	name := &field{label: "Connector name", value: w.s.ConnectorName, check: settings.CheckConnectorName,
		note: "How this connector is listed in the dashboard, e.g. dc1-connector-1."}
	if name.value == "" {
		name.value = w.s.Hostname
	}
	f := &form{title: w.stepTitle(2, "Control plane"), fields: []*field{url, name}}
	sync := func() {
		w.s.ControlPlaneURL = strings.TrimRight(strings.TrimSpace(url.value), "/")
		w.s.ConnectorName = strings.TrimSpace(name.value)
	}
	f.done = func(a *App) { sync(); w.gotoToken(a) }
	f.back = func(a *App) { sync(); w.unattended = false; a.show(w.networkForm()) }
	return f
}

func (w *wizard) tokenForm() *form {
	tok := &field{label: "Enrolment token", kind: fieldToken, check: checkToken}
	f := &form{title: w.stepTitle(3, "Enrolment token"), fields: []*field{tok},
		intro: "Create a token in the VaultPAM dashboard: Connectors -> Add Connector. " +
			"It has 20 characters in 4 groups of 5, is valid for 1 hour and works once. " +
			"Type it here; case does not matter and the dashes are added for you. " +
			"The last character is a check: a typo is caught before anything is sent."}
	f.done = func(a *App) {
		w.token, _ = protocol.ParseToken(tok.value)
		w.gotoSummary(a)
	}
	f.back = func(a *App) { a.show(w.controlPlaneForm()) }
	return f
}

// checkToken reports a token's problem in words, never echoing it.
func checkToken(v string) string {
	_, err := protocol.ParseToken(v)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, protocol.ErrTokenEmpty):
		return "Token: empty; type the 20 characters shown in the dashboard"
	case errors.Is(err, protocol.ErrTokenLength):
		return fmt.Sprintf("Token: %d of 20 characters typed; a token is 4 groups of 5", len(v))
	case errors.Is(err, protocol.ErrTokenTypo):
		return "Token has a typo (check character does not match); compare it with the dashboard and retype"
	}
	return "Token: " + err.Error()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// linksView lists the network cards with their link state.
type linksView struct {
	w     *wizard
	links []netinfo.Link
	err   error
	sel   int
	init  bool
}

func (v *linksView) refresh(a *App) {
	v.links, v.err = a.env.Net.Links()
	if !v.init {
		v.init = true
		for i, l := range v.links {
			if l.Name == v.w.s.Interface {
				v.sel = i
			}
		}
	}
	if v.sel >= len(v.links) {
		v.sel = 0
	}
}

func (v *linksView) tick(a *App) { v.refresh(a) }

func (v *linksView) draw(a *App) page {
	if !v.init {
		v.refresh(a)
	}
	body := wrap(2, "Choose the network card that reaches the control plane. State is live: connect the VM's network now if it shows no carrier.")
	body = append(body, blank(), bold("    Card        MAC address         State        Addresses"))
	for i, l := range v.links {
		var addrs []string
		for _, p := range l.Addrs {
			addrs = append(addrs, p.String())
		}
		row := fmt.Sprintf("    %-11s %-19s %-12s %s", l.Name, l.MAC, l.State(), strings.Join(addrs, " "))
		if i == v.sel {
			body = append(body, screen.Line{{Text: "  >"}, {Text: row[3:], Attr: screen.Reverse}})
		} else {
			body = append(body, text(row))
		}
	}
	msg := ""
	switch {
	case v.err != nil:
		msg = "error: " + v.err.Error()
	case len(v.links) == 0:
		msg = "No network card found; add one to the VM (vmxnet3) and wait here"
	}
	return page{title: v.w.stepTitle(1, "Network card"), body: body, msg: msg, help: "Up/Down choose  Enter select  Esc back"}
}

func (v *linksView) key(a *App, k screen.Key) {
	switch k.Kind {
	case screen.KeyUp:
		if v.sel > 0 {
			v.sel--
		}
	case screen.KeyDown:
		if v.sel < len(v.links)-1 {
			v.sel++
		}
	case screen.KeyEnter:
		if len(v.links) == 0 {
			return
		}
		v.w.s.Interface = v.links[v.sel].Name
		v.w.gotoNetwork(a)
	case screen.KeyEsc:
		a.lock.release()
		a.lock = nil
		if v.w.networkOnly {
			a.showHealth()
		} else {
			a.show(&welcomeView{w: v.w})
		}
	}
}
