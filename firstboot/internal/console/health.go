package console

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// health caches what the health screen shows. Every source refreshes in
// the background; the screen draws whatever is cached, so a slow call only
// makes its own line stale.
type health struct {
	st       localapi.Status
	stErr    error
	stAt     time.Time
	links    []netinfo.Link
	gateway  string
	set      settings.Settings
	data     string
	image    string
	verity   string
	ntp      string
	dns      string // the resolver's servers; see Probes.DNS
	inflight map[string]bool
	last     map[string]time.Time
	// dismissed: the operator left the needs-recovery screen with Esc;
	// show the health screen until the state changes.
	dismissed string
	recovery  *enrolView // the needs-recovery screen's token input
}

// refresh starts every source that is due and not already running.
func (h *health) refresh(a *App) {
	now := time.Now()
	due := func(name string, every time.Duration) bool {
		if h.inflight[name] || now.Sub(h.last[name]) < every {
			return false
		}
		h.inflight[name], h.last[name] = true, now
		return true
	}
	if due("status", time.Second) {
		goDo(a, func(ctx context.Context) statusResult {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			st, err := a.env.Connector.Status(ctx)
			return statusResult{st, err}
		}, func(r statusResult) {
			h.inflight["status"] = false
			h.st, h.stErr = r.st, r.err
			if r.err == nil {
				h.stAt = a.env.Now()
			}
		})
	}
	if due("net", 2*time.Second) {
		goDo(a, func(ctx context.Context) netResult {
			ls, _ := a.env.Net.Links()
			gw, _ := a.env.Net.DefaultGateway()
			return netResult{ls, gw, settings.Load(a.env.Root)}
		}, func(r netResult) {
			h.inflight["net"] = false
			h.links, h.gateway, h.set = r.links, r.gw, r.set
		})
	}
	probe := func(name string, every time.Duration, fn func(context.Context) string, dst *string) {
		if !due(name, every) {
			return
		}
		goDo(a, func(ctx context.Context) string {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return fn(ctx)
		}, func(v string) { h.inflight[name] = false; *dst = v })
	}
	p := a.probes
	probe("data", 5*time.Second, p.Data, &h.data)
	probe("image", time.Hour, p.Image, &h.image)
	probe("verity", 30*time.Second, p.Verity, &h.verity)
	probe("ntp", 10*time.Second, p.NTP, &h.ntp)
	probe("dns", 5*time.Second, p.DNS, &h.dns)
}

type statusResult struct {
	st  localapi.Status
	err error
}

type netResult struct {
	links []netinfo.Link
	gw    string
	set   settings.Settings
}

// showHealth shows the health screen (or the needs-recovery screen when the
// connector needs recovery).
func (a *App) showHealth() {
	if a.health == nil {
		a.health = &health{inflight: map[string]bool{}, last: map[string]time.Time{}}
	}
	if r := a.health.recovery; r != nil && r.phase != 1 {
		a.health.recovery = nil
	}
	a.show(&healthView{})
	a.health.refresh(a)
}

type healthView struct{}

func (v *healthView) tick(a *App) { a.health.refresh(a) }

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

func orDash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}

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
		body = append(body, kvWrap("Why", h.stErr.Error())...)
		body = append(body, kvWrap("What to do", "the connector starts once /config/connector.yaml exists; L shows its logs")...)
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
			body = append(body, kvWrap("Why", st.Reason)...)
		}
		if st.Hint != "" {
			body = append(body, kvWrap("What to do", st.Hint)...)
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
