package console

import (
	"fmt"
	"strings"

	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

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
	body := a.wrap(2, "Choose the network card that reaches the control plane. State is live: connect the VM's network now if it shows no carrier.")
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
		a.releaseLock()
		if v.w.networkOnly {
			a.showHealth()
		} else {
			a.show(&welcomeView{w: v.w})
		}
	}
}
