package console

// The wizard's questions: one form per step, each field with its check.

import (
	"fmt"
	"strings"

	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

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
