package console

import (
	"fmt"
	"strings"

	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// summaryView shows every answer before anything is changed.
type summaryView struct{ w *wizard }

func (v *summaryView) draw(a *App) page {
	s := v.w.s
	state := "not found"
	if l, ok := netinfo.Find(a.env.Net, s.Interface); ok {
		state = l.State()
	}
	body := []screen.Line{bold("  Check the settings. Nothing has been changed yet."), blank(),
		kv("Network card", fmt.Sprintf("%s (%s)", s.Interface, state))}
	if s.VLAN != "" {
		body = append(body, kv("VLAN", s.VLAN+" (tagged, on "+s.LinkName()+")"))
	}
	switch {
	case s.NoIPv4:
		body = append(body, kv("IPv4", "off (IPv6 only)"))
	case s.DHCP:
		body = append(body, kv("Addressing", "DHCP"))
	default:
		body = append(body, kv("Addressing", "Static "+s.Address+" via "+s.Gateway))
	}
	switch s.IPv6 {
	case settings.IPv6SLAAC:
		body = append(body, kv("IPv6", "SLAAC (router advertisements)"))
	case settings.IPv6DHCPv6:
		body = append(body, kv("IPv6", "DHCPv6"))
	case settings.IPv6Static:
		body = append(body, kv("IPv6", "Static "+s.Address6+" via "+s.Gateway6))
	}
	body = append(body,
		kv("DNS servers", orDefault(strings.Join(settings.SplitList(s.DNS), ", "), "from the network (DHCP, RA)")),
		kv("NTP servers", orDefault(strings.Join(settings.SplitList(s.NTP), ", "), "from DHCP or the default pool")),
		kv("Hostname", s.Hostname),
		kv("HTTP proxy", orDefault(s.Proxy, "none (direct)")))
	help := "Enter apply  1 network  Esc back"
	if !v.w.networkOnly {
		body = append(body,
			kv("Control plane", s.ControlPlaneURL),
			kv("Connector name", s.ConnectorName),
			kv("Enrolment token", maskToken(20)+" (check character OK)"))
		help = "Enter apply  1 network  2 control plane  3 token  Esc back"
	}
	if s.CACert != "" {
		if certs, err := settings.ParseCABundle([]byte(s.CACert)); err == nil {
			body = append(body, kv("Trusted CA", fmt.Sprintf("%s (SHA-256 %s...)", certs[len(certs)-1].Subject.CommonName, settings.Fingerprint(certs[len(certs)-1])[:23])))
		}
	}
	if v.w.caProblem != "" {
		body = append(body, blank())
		body = append(body, a.wrap(2, "vaultpam.ca_cert from the OVF environment was not used: "+v.w.caProblem+". Fix the property and redeploy, or trust the control plane's CA when the TLS check shows it (T).")...)
	}
	if v.w.ovfSource != "" {
		body = append(body, blank(), text("  Pre-set values came from the OVF environment ("+v.w.ovfSource+")."))
	}
	title := v.w.stepTitle(4, "Summary")
	if v.w.networkOnly {
		title = v.w.stepTitle(2, "Summary")
	}
	return page{title: title, body: body, help: help}
}

func (v *summaryView) key(a *App, k screen.Key) {
	w := v.w
	switch {
	case k.Kind == screen.KeyEnter:
		w.apply(a)
	case k.Kind == screen.KeyEsc && w.networkOnly, k.Kind == screen.KeyRune && k.Rune == '1':
		a.show(&linksView{w: w})
	case k.Kind == screen.KeyEsc:
		a.show(w.tokenForm())
	case k.Kind == screen.KeyRune && k.Rune == '2' && !w.networkOnly:
		a.show(w.controlPlaneForm())
	case k.Kind == screen.KeyRune && k.Rune == '3' && !w.networkOnly:
		a.show(w.tokenForm())
	}
}
