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
type healthView struct{ pair pairWatch }

// tick refreshes the health data; while the connector pairs (started on
// the other console or from the recovery page) the screen follows it.
func (v *healthView) tick(a *App) {
	a.health.refresh(a)
	v.pair.update(a.health.st, nil)
}

func (v *healthView) draw(a *App) page {
	h := a.health
	if h.st.State == state.NeedsRecovery.String() && h.dismissed != h.st.State {
		return recoveryPage(a)
	}
	if p, ok := v.pair.followPage(a, "R re-enrol  N network  L logs  D diagnostics  B reboot  S shut down"); ok {
		return p
	}
	now := a.env.Now()
	st := h.st
	var b bodyBuilder
	switch {
	case h.stErr != nil && st.State == "":
		b.add(0, screen.Line{{Text: "  " + screen.Pad("State", 21)}, {Text: " Connector not running ", Attr: screen.Bold | screen.Reverse}})
		b.add(0, a.kvWrap("Why", h.stErr.Error())...)
		b.add(0, a.kvWrap("What to do", "the connector starts once /config/connector.yaml exists; L shows its logs")...)
	case st.State == "":
		b.add(0, kv("State", "reading status..."))
	default:
		label := state.LabelOf(st.State)
		line := screen.Line{{Text: "  " + screen.Pad("State", 21)}, {Text: " " + label + " ", Attr: screen.Bold | screen.Reverse}}
		if !st.Since.IsZero() {
			line = append(line, screen.Span{Text: "  for " + strings.TrimSuffix(ago(now, st.Since), " ago")})
		}
		b.add(0, line)
		if st.Reason != "" {
			b.add(0, a.kvWrap("Why", st.Reason)...)
		}
		if st.Hint != "" {
			b.add(0, a.kvWrap("What to do", st.Hint)...)
		}
		if h.stErr != nil {
			b.add(0, kv("", "(status is "+ago(now, h.stAt)+": "+h.stErr.Error()+")"))
		}
	}
	mode := localapi.ModeLabel(st.Mode)
	modeRank := dropMode
	if st.Mode == localapi.ModeGuidedRecovery {
		mode += " (/data is not persistent)"
		modeRank = 0
	}
	hb := ago(now, st.LastHeartbeat)
	if st.HeartbeatInterval > 0 {
		hb += fmt.Sprintf(" (every %s)", time.Duration(st.HeartbeatInterval))
	}
	if st.TunnelRTT > 0 {
		hb += ", RTT " + time.Duration(st.TunnelRTT).Round(100*time.Microsecond).String()
	}
	cert, certRank := "-", dropCert
	if !st.CertNotAfter.IsZero() {
		days := int(st.CertNotAfter.Sub(now).Hours() / 24)
		cert = fmt.Sprintf("valid until %s (%d days)", st.CertNotAfter.UTC().Format("2006-01-02 15:04 UTC"), days)
		if days < 7 {
			certRank = 0
		}
		if st.CertNotAfter.Before(now) {
			cert = "EXPIRED " + st.CertNotAfter.UTC().Format("2006-01-02 15:04 UTC")
		}
	}
	b.add(modeRank, kv("Mode", orDash(mode)))
	b.add(dropConnector, kv("Connector", fmt.Sprintf("%s  (ID %s)", orDash(st.ConnectorName), orDash(st.ConnectorID))))
	b.add(dropControlPlane, kv("Control plane", orDash(firstOf(st.ControlPlane, h.set.ControlPlaneURL))))
	b.add(dropHeartbeat, kv("Last heartbeat", hb))
	sessions, clock, warn := "-", "-", false
	if st.State != "" { // the connector answered
		sessions = sessionsLine(st)
		clock, warn = clockLine(st)
	}
	b.add(dropSessions, kv("Sessions", sessions))
	if line, problem := targetsLine(st.AllowedTargets); line != "" {
		rank := dropTargets
		if problem {
			rank = 0
		}
		b.add(rank, a.kvWrap("Targets", line)...)
	}
	if warn {
		for i, l := range screen.WrapText("! "+clock, a.width()-26) {
			label := ""
			if i == 0 {
				label = "Clock"
			}
			b.add(0, screen.Line{{Text: "  " + screen.Pad(label, 22)}, {Text: l, Attr: screen.Bold}})
		}
	} else {
		b.add(dropClock, kv("Clock", clock))
	}
	b.add(certRank, kv("Certificate", cert))
	b.add(dropBlank, blank())
	iface := h.set.LinkName() // with a VLAN, the VLAN interface holds the addresses
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
	switch {
	case h.set.NoIPv4:
		how = "IPv6 only"
	case h.set.DHCP:
		how = "DHCP"
	}
	b.add(0, kv("Network ("+how+")", netLine))
	b.add(dropGateway, kv("Gateway", gatewayLine(h.gateway, h.set.DHCP, leased)))
	b.add(dropDNS, kv("DNS servers", dnsLine(h.set, h.dns, leased)))
	ntpRank := dropNTP
	if h.ntp != "synchronized" {
		ntpRank = dropNTPUnsynced
	}
	b.add(ntpRank, kv("NTP", orDefault(strings.Join(settings.SplitList(h.set.NTP), ", "), "from DHCP/default")+", "+orDefault(h.ntp, "...")))
	b.add(dropHostname, kv("Hostname", orDash(h.set.Hostname)))
	dataRank := dropData
	if !strings.HasPrefix(h.data, "ext4, persistent") && !strings.HasPrefix(h.data, "persistent") {
		dataRank = 0
	}
	b.add(dataRank, kv("DATA partition", orDefault(h.data, "...")))
	b.add(0, kv("Image", h.imageLine(st.Version)))
	if u := h.updateLine(now); u != "" {
		lines := a.kvWrap("Update", u)
		if a.size.Rows <= 25 && len(lines) > 2 { // the smallest screens: two rows at most
			lines = lines[:2]
			lines[1] = kv("", clipText(lines[1].Text()[24:]+" ...", a.width()-26))
		}
		b.add(dropUpdate, lines...)
	}
	if h.imgOK && h.imgErr != nil { // what the rows above say may be stale
		b.add(0, a.kvWrap("Updater", "no answer since "+ago(now, h.imgAt)+": "+strings.TrimPrefix(updaterDown(h.imgErr), "no image updater "))...)
	}
	if av := h.availableLine(); av != "" {
		b.add(0, bold("  "+av))
	}
	verityRank := dropVerity
	if !strings.HasPrefix(h.verity, "on, ") {
		verityRank = 0
	}
	b.add(verityRank, kv("Root verity", orDefault(h.verity, "...")))
	p := page{title: "Health", msg: h.note}
	p.body = b.fit(a.size.Rows - 3 - a.msgRows(p.msg))
	p.help = fitHelp(a.size.Cols-1, h.helpKeys())
	return p
}

// Drop ranks of the health screen's rows: when the screen is too small
// (80×24 with a long reason), rows go in this order, highest rank first;
// rank 0 rows stay. A row whose value is a problem (an expired
// certificate, a clock warning, /data not persistent, verity corruption)
// gets rank 0.
const (
	_ = iota
	dropUpdate
	dropHeartbeat
	dropConnector
	dropNTPUnsynced
	dropSessions
	dropData
	dropCert
	dropClock
	dropNTP
	dropDNS
	dropGateway
	dropMode
	dropControlPlane
	dropVerity
	dropHostname
	dropTargets
	dropBlank
)

// targetsLine says in a line where sessions may go (the connector's
// allowed_targets and its default deny set); problem is true when the
// connector cannot apply the policy and refuses every session.
func targetsLine(p *localapi.TargetPolicy) (line string, problem bool) {
	switch {
	case p == nil:
		return "", false
	case strings.Contains(p.Summary, "every session is refused"):
		return p.Summary, true
	case p.All:
		return "any except loopback, link-local and this appliance", false
	}
	return fmt.Sprintf("only allowed_targets (%d); no loopback, link-local, self", len(p.Entries)), false
}

// bodyBuilder collects rows with their drop ranks.
type bodyBuilder struct {
	lines []screen.Line
	ranks []int
}

func (b *bodyBuilder) add(rank int, lines ...screen.Line) {
	for _, l := range lines {
		b.lines = append(b.lines, l)
		b.ranks = append(b.ranks, rank)
	}
}

// fit drops rows, highest rank first (the lowest such row first), until
// at most rows remain.
func (b *bodyBuilder) fit(rows int) []screen.Line {
	keep := make([]bool, len(b.lines))
	for i := range keep {
		keep[i] = true
	}
	n := len(b.lines)
	for n > rows {
		worst := -1
		for i := len(b.lines) - 1; i >= 0; i-- {
			if keep[i] && b.ranks[i] > 0 && (worst < 0 || b.ranks[i] > b.ranks[worst]) {
				worst = i
			}
		}
		if worst < 0 {
			break // only rank 0 left: the frame cuts the rest
		}
		keep[worst] = false
		n--
	}
	var out []screen.Line
	for i, l := range b.lines {
		if keep[i] {
			out = append(out, l)
		}
	}
	return out
}

// msgRows is how many rows the frame gives msg (at most 2).
func (a *App) msgRows(msg string) int {
	if msg == "" {
		return 0
	}
	return min(len(screen.WrapText(msg, a.width()-2)), 2)
}

// helpKey is one key in the key help: its text, a shorter one for narrow
// screens, and whether it may be left out there (the key still works).
type helpKey struct {
	long, short string
	optional    bool
}

// helpKeys lists the health screen's keys in the order shown: U and O
// only when they can do something (the keys answer anyway).
func (h *health) helpKeys() []helpKey {
	keys := []helpKey{{"R re-enrol", "R re-enrol", false}}
	if h.availableLine() != "" {
		keys = append(keys, helpKey{"U install update", "U update", false})
	}
	if o := h.img.Other; h.imgOK && o != nil && o.State == "good" && !h.img.Pending {
		keys = append(keys, helpKey{"O roll back", "O rollback", false})
	}
	return append(keys,
		helpKey{"N network", "N net", true},
		helpKey{"L logs", "L logs", true},
		helpKey{"D diagnostics", "D diag", false},
		helpKey{"G send support bundle", "G support", false},
		helpKey{"B reboot", "B reboot", false},
		helpKey{"S shut down", "S off", false},
	)
}

// fitHelp joins the keys' texts in width: the long texts where they fit;
// else the keys are shortened one by one (the longest text first), and
// then optional keys left out, first to last.
func fitHelp(width int, keys []helpKey) string {
	text := make([]string, len(keys))
	for i, k := range keys {
		text[i] = k.long
	}
	join := func() string {
		var parts []string
		for _, t := range text {
			if t != "" {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, "  ")
	}
	for len(join()) > width {
		longest := -1
		for i, k := range keys {
			if text[i] == k.long && k.long != k.short && (longest < 0 || len(k.long) > len(keys[longest].long)) {
				longest = i
			}
		}
		if longest < 0 {
			break
		}
		text[longest] = keys[longest].short
	}
	for i, k := range keys {
		if len(join()) <= width {
			break
		}
		if k.optional {
			text[i] = ""
		}
	}
	return join()
}

// sessionsLine: the session counters, "3 active, 12 ended; 47.1 KiB up, 8.7 MiB down".
func sessionsLine(st localapi.Status) string {
	return fmt.Sprintf("%d active, %d ended; %s up, %s down", st.ActiveSessions, st.SessionsTotal,
		byteSize(st.BytesUp), byteSize(st.BytesDown))
}

// clockLine: the clock's offset to the control plane's, and whether it is
// past localapi.MaxClockOffset.
func clockLine(st localapi.Status) (string, bool) {
	if st.ClockOffset == nil {
		return "not compared yet (needs the tunnel)", false
	}
	off := time.Duration(*st.ClockOffset)
	if w := firstOf(st.ClockWarning, localapi.ClockWarning(off)); w != "" {
		return w, true
	}
	abs, dir := off, "behind"
	if off < 0 {
		abs, dir = -off, "ahead of"
	}
	return fmt.Sprintf("%s %s the control plane's (within %s)", abs.Round(time.Millisecond), dir, localapi.MaxClockOffset), false
}

// byteSize says n bytes for people, in binary units.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
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
	h.note = ""
	switch k.Rune {
	case 'r', 'R':
		a.show(newEnrolView(a, false))
	case 'n', 'N':
		a.startWizard(true)
	case 'l', 'L':
		a.show(newLogsView(a))
	case 'd', 'D':
		a.show(newDiagView(a))
	case 'u', 'U':
		installKey(a)
	case 'o', 'O':
		rollbackKey(a)
	case 'g', 'G':
		a.show(newSupportView(a))
	case 'b', 'B':
		a.show(&confirmView{what: "Reboot the appliance", do: a.env.Privileged.Reboot,
			note: "Sessions through this connector drop; it reconnects after the reboot."})
	case 's', 'S':
		a.show(&confirmView{what: "Shut down the appliance", do: a.env.Privileged.PowerOff,
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
