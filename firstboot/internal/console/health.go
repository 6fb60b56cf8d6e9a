package console

import (
	"fmt"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// healthView is the health screen: the connector's state and why, and the
// appliance's network, DATA partition, image and verity. It draws the
// needs-recovery page (recovery.go) instead while the connector needs
// recovery, until the operator dismisses it.
type healthView struct{}

func (v *healthView) tick(a *App) { a.health.refresh(a) }

func (v *healthView) draw(a *App) page {
	h := a.health
	if h.st.State == state.NeedsRecovery.String() && h.dismissed != h.st.State {
		return recoveryPage(a)
	}
	now := a.env.Now()
	st := h.st
	var body []screen.Line
	switch {
	case h.stErr != nil && st.State == "":
		body = append(body, screen.Line{{Text: "  " + screen.Pad("State", 21)}, {Text: " Connector not running ", Attr: screen.Bold | screen.Reverse}})
		body = append(body, a.kvWrap("Why", h.stErr.Error())...)
		body = append(body, a.kvWrap("What to do", "the connector starts once /config/connector.yaml exists; L shows its logs")...)
	case st.State == "":
		body = append(body, kv("State", "reading status..."))
	default:
		label := state.LabelOf(st.State)
		line := screen.Line{{Text: "  " + screen.Pad("State", 21)}, {Text: " " + label + " ", Attr: screen.Bold | screen.Reverse}}
		if !st.Since.IsZero() {
			line = append(line, screen.Span{Text: "  for " + strings.TrimSuffix(ago(now, st.Since), " ago")})
		}
		body = append(body, line)
		if st.Reason != "" {
			body = append(body, a.kvWrap("Why", st.Reason)...)
		}
		if st.Hint != "" {
			body = append(body, a.kvWrap("What to do", st.Hint)...)
		}
		if h.stErr != nil {
			body = append(body, kv("", "(status is "+ago(now, h.stAt)+": "+h.stErr.Error()+")"))
		}
	}
	mode := localapi.ModeLabel(st.Mode)
	if st.Mode == localapi.ModeGuidedRecovery {
		mode += " (/data is not persistent)"
	}
	hb := ago(now, st.LastHeartbeat)
	if st.HeartbeatInterval > 0 {
		hb += fmt.Sprintf(" (every %s)", time.Duration(st.HeartbeatInterval))
	}
	rtt := "-"
	if st.TunnelRTT > 0 {
		rtt = time.Duration(st.TunnelRTT).Round(100 * time.Microsecond).String()
	}
	cert := "-"
	if !st.CertNotAfter.IsZero() {
		days := int(st.CertNotAfter.Sub(now).Hours() / 24)
		cert = fmt.Sprintf("valid until %s (%d days)", st.CertNotAfter.UTC().Format("2006-01-02 15:04 UTC"), days)
		if st.CertNotAfter.Before(now) {
			cert = "EXPIRED " + st.CertNotAfter.UTC().Format("2006-01-02 15:04 UTC")
		}
	}
	body = append(body,
		kv("Mode", orDash(mode)),
		kv("Connector", fmt.Sprintf("%s  (ID %s)", orDash(st.ConnectorName), orDash(st.ConnectorID))),
		kv("Control plane", orDash(firstOf(st.ControlPlane, h.set.ControlPlaneURL))),
		kv("Last heartbeat", hb),
		kv("Tunnel", fmt.Sprintf("RTT %s, %d active sessions", rtt, st.ActiveSessions)),
		kv("Certificate", cert),
		blank())
	iface := h.set.Interface
	netLine := iface + " not found"
	leased := false // with DHCP: the interface has an IPv4 address
	for _, l := range h.links {
		if l.Name == iface {
			var ads []string
			for _, p := range l.Addrs {
				ads = append(ads, p.String())
				leased = leased || p.Addr().Is4()
			}
			netLine = fmt.Sprintf("%s %s %s", l.Name, l.State(), orDefault(strings.Join(ads, " "), "no address"))
		}
	}
	how := "static"
	if h.set.DHCP {
		how = "DHCP"
	}
	body = append(body,
		kv("Network ("+how+")", netLine),
		kv("Gateway", gatewayLine(h.gateway, h.set.DHCP, leased)),
		kv("DNS servers", dnsLine(h.set, h.dns, leased)),
		kv("NTP", orDefault(strings.Join(settings.SplitList(h.set.NTP), ", "), "from DHCP/default")+", "+orDefault(h.ntp, "...")),
		kv("Hostname", orDash(h.set.Hostname)),
		kv("DATA partition", orDefault(h.data, "...")),
		kv("Image", orDefault(h.image, "...")+", connector "+orDash(st.Version)),
		kv("Root verity", orDefault(h.verity, "...")))
	return page{title: "Health", body: body,
		help: "R re-enrol  N network  L logs  D diagnostics  B reboot  S shut down"}
}

func (v *healthView) key(a *App, k screen.Key) {
	h := a.health
	if h.st.State == state.NeedsRecovery.String() && h.dismissed != h.st.State {
		recoveryKey(a, k)
		return
	}
	if k.Kind != screen.KeyRune {
		return
	}
	switch k.Rune {
	case 'r', 'R':
		a.show(newEnrolView(a, false))
	case 'n', 'N':
		a.startWizard(true)
	case 'l', 'L':
		a.show(newLogsView(a))
	case 'd', 'D':
		a.show(newDiagView(a))
	case 'b', 'B':
		a.show(&confirmView{what: "Reboot the appliance", cmd: []string{"systemctl", "reboot"},
			note: "Sessions through this connector drop; it reconnects after the reboot."})
	case 's', 'S':
		a.show(&confirmView{what: "Shut down the appliance", cmd: []string{"systemctl", "poweroff"},
			note: "The connector goes Offline in the dashboard until the VM is powered on again."})
	}
}

// gatewayLine says "none" so that, with DHCP, the operator knows it is the
// DHCP server that sent no router (QEMU's restricted network, for one).
func gatewayLine(gw string, dhcp, leased bool) string {
	switch {
	case gw != "":
		return gw
	case dhcp && !leased:
		return "none yet: waiting for a DHCP lease"
	case dhcp:
		return "none: the DHCP server sent no router"
	}
	return "none"
}

// dnsLine shows typed servers as typed; with DHCP the servers the resolver
// got, because "from DHCP" does not help someone chasing a DNS failure.
func dnsLine(s settings.Settings, live string, leased bool) string {
	if typed := settings.SplitList(s.DNS); len(typed) > 0 {
		return strings.Join(typed, ", ")
	}
	if !s.DHCP {
		return "none typed"
	}
	switch {
	case !leased && (live == "" || live == "none"):
		return "none yet: waiting for a DHCP lease"
	case live == "": // not read yet
		return "from DHCP"
	case strings.HasPrefix(live, "unknown"):
		return "from DHCP, " + live
	case live == "none":
		return "none: DHCP sent none, names will not resolve"
	}
	return live + " (from DHCP)"
}
