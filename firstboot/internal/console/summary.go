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

func orDefault(v, d string) string {
	if strings.TrimSpace(v) == "" {
		return d
	}
	return v
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

// messageView shows a few lines and goes on with Enter (when next is set).
type messageView struct {
	title string
	lines []string
	next  func(a *App)
}

func (v *messageView) draw(a *App) page {
	var body []screen.Line
	for _, l := range v.lines {
		body = append(body, wrap(2, l)...)
	}
	help := ""
	if v.next != nil {
		help = "Enter continue"
	}
	return page{title: v.title, body: body, help: help}
}

func (v *messageView) key(a *App, k screen.Key) {
	if v.next != nil && k.Kind == screen.KeyEnter {
		v.next(a)
	}
}

// waitingView is shown while the other console runs the wizard.
type waitingView struct {
	holder   string
	progress []string
}

func (v *waitingView) tick(a *App) {
	l, holder, progress, err := tryLock(a.env.Root, a.env.TTY)
	if err != nil {
		return
	}
	if l != nil {
		// The other console finished or gave up: start over from the top.
		l.release()
		a.start()
		return
	}
	v.holder, v.progress = holder, progress
}

func (v *waitingView) draw(a *App) page {
	body := []screen.Line{bold(fmt.Sprintf("  Setup is running on %s.", v.holder)), blank(),
		text("  Only one console can change the settings at a time. This screen follows"),
		text("  its progress and continues when it is done."), blank()}
	for _, p := range v.progress {
		body = append(body, text("    "+p))
	}
	return page{title: "Setup", body: body, help: "Waiting for " + v.holder}
}

func (v *waitingView) key(a *App, k screen.Key) {}
