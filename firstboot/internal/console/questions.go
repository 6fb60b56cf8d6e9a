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
		t := w.s
		t.DHCP, t.DNS = method.value == "DHCP", v
		return t.Check(settings.FieldDNS)
	}
	ntp := &field{label: "NTP servers", value: w.s.NTP, check: func(v string) string { return settings.CheckHostList("NTP servers", v) },
		note: "Comma-separated names or addresses; empty uses DHCP's or the default pool. A correct clock is needed for TLS."}
	host := &field{label: "Hostname", value: w.s.Hostname, check: settings.CheckHostname, note: "The appliance's host name, e.g. vaultpam-dc1."}
	proxy := &field{label: "HTTP proxy", value: w.s.Proxy, check: settings.CheckProxy,
		note: "Only if outbound HTTPS must go through a proxy: http://host:port. Empty for direct."}
	f.fields = []*field{method, addr, gw, dns, ntp, host, proxy}
	if w.s.NoIPv4 {
		f.focus = 3 // the IPv4 fields are hidden
	}
	sync := func() {
		w.s.DHCP = method.value == "DHCP"
		w.s.Address, w.s.Gateway, w.s.DNS, w.s.NTP = strings.TrimSpace(addr.value), strings.TrimSpace(gw.value), dns.value, ntp.value
		w.s.Hostname, w.s.Proxy = strings.TrimSpace(host.value), strings.TrimSpace(proxy.value)
	}
	// hidden() reads w.s.DHCP, so keep it in step with the choice field.
	static = func() bool { return method.value == "DHCP" || w.s.NoIPv4 }
	addr.hidden, gw.hidden = static, static
	addr.check = settings.CheckCIDR4
	method.hidden = func() bool { return w.s.NoIPv4 }
	if w.s.NoIPv4 {
		f.intro = fmt.Sprintf("Settings for %s. IPv4 is off (IPv6 only): PgDn to change.", w.s.Interface)
	}
	f.more = func(a *App) { sync(); a.show(w.moreForm()) }
	f.moreHelp = "PgDn IPv6/VLAN"
	f.done = func(a *App) {
		sync()
		if w.s.NoIPv4 || (w.s.IPv6 != "" && w.s.IPv6 != settings.IPv6Off) || w.s.VLAN != "" {
			a.show(w.moreForm()) // what was set there is shown before going on
			return
		}
		w.gotoControlPlane(a)
	}
	f.back = func(a *App) { sync(); w.unattended = false; a.show(&linksView{w: w}) }
	return f
}

// moreForm asks for IPv6, the VLAN and whether IPv4 is used: the network
// form's second page (PgDn there). Its answers are kept in w.s as typed.
func (w *wizard) moreForm() *form {
	vlan := &field{label: "VLAN ID", value: w.s.VLAN, max: 4,
		note: "Only if the port group passes tagged frames (VLAN trunking, VGT): the 802.1Q VLAN ID, 1 to 4094. Empty: untagged."}
	vlan.check = func(v string) string { return settings.CheckVLAN(v, w.s.Interface) }
	modes := []string{"Off", "SLAAC", "DHCPv6", "Static"}
	mode := &field{label: "IPv6", kind: fieldChoice, choices: modes, value: "Off",
		note: "Off: no IPv6. SLAAC: from router advertisements. DHCPv6: from a DHCPv6 server. Static: you type it."}
	for i, m := range settings.IPv6Modes() {
		if m == w.s.IPv6 {
			mode.value = modes[i]
		}
	}
	notStatic := func() bool { return mode.value != "Static" }
	addr := &field{label: "IPv6 address/prefix", value: w.s.Address6, hidden: notStatic, check: settings.CheckCIDR6,
		note: "The appliance's IPv6 address with prefix length, e.g. 2001:db8::10/64."}
	gw := &field{label: "IPv6 gateway", value: w.s.Gateway6, hidden: notStatic,
		note: "The IPv6 router: an address in the subnet, e.g. 2001:db8::1, or its link-local address, e.g. fe80::1."}
	gw.check = func(v string) string { return settings.CheckGateway6(v, addr.value) }
	v4 := &field{label: "IPv4", kind: fieldChoice, choices: []string{"On", "Off"}, value: "On",
		note: "Off for an IPv6-only network: no IPv4 address at all."}
	if w.s.NoIPv4 {
		v4.value = "Off"
	}
	modeOf := func() string {
		for i, m := range modes {
			if m == mode.value {
				return settings.IPv6Modes()[i]
			}
		}
		return settings.IPv6Off
	}
	v4.check = func(string) string { return settings.CheckIPv6Mode(modeOf(), v4.value == "Off") }
	f := &form{title: w.stepTitle(1, "Network, IPv6 and VLAN"), intro: fmt.Sprintf("More settings for %s.", w.s.Interface),
		fields: []*field{vlan, mode, addr, gw, v4}}
	sync := func() {
		w.s.VLAN = strings.TrimSpace(vlan.value)
		w.s.IPv6, w.s.Address6, w.s.Gateway6 = modeOf(), strings.TrimSpace(addr.value), strings.TrimSpace(gw.value)
		if w.s.IPv6 == settings.IPv6Off {
			w.s.IPv6 = ""
		}
		w.s.NoIPv4 = v4.value == "Off"
		if w.s.NoIPv4 {
			w.s.DHCP = false
		}
	}
	f.done = func(a *App) {
		sync()
		// DNS and the IPv4 fields are on the first page: back there when
		// the answers here make them wrong (no DNS from anywhere).
		if nf := w.networkForm(); !allValid(nf) {
			a.show(nf)
			return
		}
		w.gotoControlPlane(a)
	}
	f.back = func(a *App) { sync(); a.show(w.networkForm()) }
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
