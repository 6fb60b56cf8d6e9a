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
	if s.DHCP {
		body = append(body, kv("Addressing", "DHCP"))
	} else {
		body = append(body, kv("Addressing", "Static "+s.Address+" via "+s.Gateway))
	}
	body = append(body,
		kv("DNS servers", orDefault(strings.Join(settings.SplitList(s.DNS), ", "), "from DHCP")),
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
