package console

// The health screen's image and update part: what the image updater
// (vaultpam-update, its local API on localapi.UpdaterSocket) reports, and
// the two keys that ask it for something: U installs an update found on
// the CD-ROM, O rolls back to the other slot's good image. Both ask first;
// only Y goes ahead, and a downgrade asks twice.
//
// The texts "Update <version> available on CD-ROM" and the keys U, O and
// Y are what the appliance's QEMU update tests type and look for.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// otherSlot names the slot that is not running ("B" for "A").
func otherSlot(running string) string {
	switch running {
	case "A":
		return "B"
	case "B":
		return "A"
	}
	return "?"
}

// imageLine is the Image row: the running version and slot, and what the
// other slot holds.
func (h *health) imageLine(connectorVersion string) string {
	if !h.imgOK {
		// No updater (not the appliance, or it is not running): what
		// /etc/os-release and the boot say.
		return orDefault(h.image, "...") + ", connector " + orDash(connectorVersion)
	}
	im := h.img
	s := fmt.Sprintf("%s in slot %s", orDefault(im.Version, "unknown version"), orDefault(im.Slot, "?"))
	if connectorVersion != "" && connectorVersion != im.Version {
		s += ", connector " + connectorVersion
	}
	other := otherSlot(im.Slot)
	switch o := im.Other; {
	case o == nil || o.State == "empty" || o.State == "":
		s += "; slot " + other + " empty"
	default:
		s += fmt.Sprintf("; slot %s %s %s", orDefault(o.Slot, other), orDefault(o.Version, "?"), o.State)
	}
	return s
}

// updateLine is the Update row: the update in progress or the last one,
// "0.2.0 rolled_back: connector not Online after 5m0s". "" when there is
// nothing to say.
func (h *health) updateLine(now time.Time) string {
	if !h.imgOK {
		if h.imgErr != nil {
			return updaterDown(h.imgErr)
		}
		return ""
	}
	u := h.img.Update
	if u == nil {
		if h.img.Pending {
			return "pending"
		}
		return "none so far"
	}
	s := orDefault(u.Version, "?")
	if u.Source == "cdrom" {
		s += " (CD-ROM)"
	}
	s += " " + u.State
	if h.img.Pending {
		s += " (pending)"
	}
	if u.Reason != "" {
		s += ": " + u.Reason
	}
	if u.State == localapi.UpdateInstalled && !h.windowBad {
		s += "; " + rebootWhen(h.window, now)
	}
	return s
}

// rebootWhen says when an installed update's reboot comes.
func rebootWhen(w config.Window, now time.Time) string {
	if w.IsZero() || w.Open(now) {
		return "reboots now"
	}
	return "reboot in the window " + w.String() + " UTC: " + windowNext(w, now)
}

// windowNext says when w opens next: "Sun 02:00, in 14h00m".
func windowNext(w config.Window, now time.Time) string {
	next := w.Next(now)
	d := next.Sub(now).Round(time.Minute)
	return fmt.Sprintf("%s, in %dh%02dm", next.UTC().Format("Mon 15:04"), int(d.Hours()), int(d.Minutes())%60)
}

// availableLine is the bold offer of an update on the CD-ROM, "" when
// there is none.
func (h *health) availableLine() string {
	av := h.img.Available
	if !h.imgOK || av == nil || av.Version == "" {
		return ""
	}
	return "Update " + av.Version + " available on CD-ROM: U installs it"
}

// updateWindow reads update_window from the connector's config at path;
// bad is true when it cannot say (the file does not read, the window does
// not parse).
func updateWindow(path string) (w config.Window, bad bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return config.Window{}, !errors.Is(err, os.ErrNotExist)
	}
	var c config.Config
	if err := config.Parse(b, &c); err != nil && strings.Contains(err.Error(), "update_window") {
		return config.Window{}, true
	}
	return c.UpdateWindow, false
}

// installKey is U: an update on the CD-ROM, after a confirmation.
func installKey(a *App) {
	h := a.health
	switch {
	case !h.imgOK:
		h.note = "No update: the image updater does not answer (" + errText(h.imgErr) + ")."
	case h.img.Available == nil:
		h.note = "No update on a CD-ROM. Attach an ISO labelled VPAM-UPDATE; the updater looks every 30 s."
	case h.img.Pending:
		h.note = "An update or a trial boot is in progress; wait until it has ended."
	default:
		a.show(newInstallView(h.img))
	}
}

// rollbackKey is O: back to the other slot's good image, after a
// confirmation; otherwise it says why not.
func rollbackKey(a *App) {
	h := a.health
	im := h.img
	other := otherSlot(im.Slot)
	o := im.Other
	switch {
	case !h.imgOK:
		h.note = "Rollback is not possible: the image updater does not answer (" + errText(h.imgErr) + ")."
	case im.Pending:
		h.note = "Rollback is not possible now: an update or a trial boot is in progress."
	case o == nil || o.State == "" || o.State == "empty":
		h.note = "Rollback is not possible: slot " + other + " holds no image."
	case o.State == "failed":
		h.note = fmt.Sprintf("Rollback is not possible: %s in slot %s failed on this appliance.", orDefault(o.Version, "the image"), o.Slot)
	case o.State == "trial":
		h.note = fmt.Sprintf("Rollback is not possible: %s in slot %s is being tried.", orDefault(o.Version, "the image"), o.Slot)
	case o.State != "good":
		h.note = fmt.Sprintf("Rollback is not possible: slot %s is %s.", o.Slot, o.State)
	default:
		a.show(&confirmView{
			what: fmt.Sprintf("Roll back to %s in slot %s", orDefault(o.Version, "the image"), o.Slot),
			note: fmt.Sprintf("The appliance reboots at once into %s (slot %s); sessions through this connector drop. "+
				"%s is tried like an update: if the connector is not Online with the same ID within 5 minutes, %s in slot %s boots again.",
				o.Version, o.Slot, o.Version, im.Version, im.Slot),
			do: func(ctx context.Context) error {
				return a.env.Updater.Rollback(ctx, localapi.RollbackRequest{Confirm: true})
			},
			describe: apiRefusal,
			done:     fmt.Sprintf("The updater took it: the appliance reboots now into %s (slot %s).", o.Version, o.Slot),
		})
	}
}

// updaterDown says why the updater does not answer, short enough for
// the Update row: the socket and the system's reason.
func updaterDown(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Addr != nil {
		return "no image updater at " + oe.Addr.String() + ": " + oe.Err.Error()
	}
	return "no image updater: " + err.Error()
}

func errText(err error) string {
	if err == nil {
		return "no answer yet"
	}
	return err.Error()
}

// apiRefusal turns an updater error into a message and a hint.
func apiRefusal(err error) (string, string) {
	var e *localapi.Error
	if errors.As(err, &e) {
		msg := e.Message
		if e.Code != "" {
			msg = "refused (" + e.Code + "): " + msg
		}
		return msg, e.Hint
	}
	return err.Error(), "check that vaultpam-update runs (L shows the connector's log; the updater logs to the journal)"
}

// installView confirms an install from the CD-ROM. An older version than
// the running one is a downgrade and needs a second, separate Y.
type installView struct {
	im        localapi.Image
	version   string
	downgrade bool // the offered version is older than the running one
	stage     int  // 0: first confirmation; 1: the downgrade's second
	sent      bool
	err, hint string
}

func newInstallView(im localapi.Image) *installView {
	v := &installView{im: im, version: im.Available.Version}
	v.downgrade = compareVersions(v.version, im.Version) < 0
	return v
}

func (v *installView) draw(a *App) page {
	h := a.health
	from, slot := orDefault(v.im.Version, "the running image"), otherSlot(v.im.Slot)
	var body []screen.Line
	if v.stage == 1 {
		body = append(body, bold(fmt.Sprintf("  Really DOWNGRADE from %s to %s?", from, v.version)), blank())
		body = append(body, a.wrap(2, fmt.Sprintf("%s is OLDER than the running %s. Going back to an older image brings back "+
			"the problems it had, and the older connector must still accept this connector's identity. "+
			"It is tried once: if it does not come Online, %s boots again.", v.version, from, from))...)
		body = append(body, blank())
		body = append(body, a.wrap(2, "Press Y again to downgrade. N or Esc cancels; nothing is written.")...)
	} else {
		title := fmt.Sprintf("  Install %s from the CD-ROM?", v.version)
		if v.downgrade {
			title = fmt.Sprintf("  Install %s from the CD-ROM? It is OLDER than the running %s.", v.version, from)
		}
		body = append(body, bold(title), blank())
		when := "As soon as it is written, the appliance reboots into it"
		if !h.window.IsZero() && !h.windowBad {
			when = "The appliance reboots into it in the update window " + h.window.String() + " UTC (next: " +
				windowNext(h.window, a.env.Now()) + ")"
		}
		body = append(body, a.wrap(2, fmt.Sprintf("1. The updater checks its signature and writes it into slot %s, "+
			"the slot that is not running; %s in slot %s keeps running meanwhile.", slot, from, v.im.Slot))...)
		body = append(body, a.wrap(2, "2. "+when+": sessions through this connector drop (they get up to a minute to end).")...)
		body = append(body, a.wrap(2, fmt.Sprintf("3. If the connector is not Online with the same ID within 5 minutes, "+
			"the appliance goes back to %s in slot %s by itself.", from, v.im.Slot))...)
	}
	if v.err != "" {
		body = append(body, blank())
		body = append(body, boldWrap(a, 2, v.err)...)
		if v.hint != "" {
			body = append(body, a.wrap(2, "hint: "+v.hint)...)
		}
	}
	p := page{title: "Install update", body: body, help: "Y install  N or Esc cancel"}
	switch {
	case v.sent:
		p.msg, p.help = "Asking the updater...", "Please wait"
	case v.stage == 1:
		p.title, p.help = "Confirm downgrade", "Y downgrade  N or Esc cancel"
	case v.downgrade:
		p.help = "Y continue  N or Esc cancel"
	}
	return p
}

func (v *installView) key(a *App, k screen.Key) {
	if v.sent {
		return
	}
	switch {
	case k.Kind == screen.KeyRune && (k.Rune == 'y' || k.Rune == 'Y'):
		if v.downgrade && v.stage == 0 {
			v.stage, v.err, v.hint = 1, "", ""
			return
		}
		v.send(a, v.stage == 1)
	case k.Kind == screen.KeyEsc || k.Kind == screen.KeyRune && (k.Rune == 'n' || k.Rune == 'N'):
		a.showHealth()
	}
}

// send asks the updater to install from the CD-ROM.
func (v *installView) send(a *App, downgrade bool) {
	v.sent = true
	req := localapi.InstallRequest{Source: "cdrom", ConfirmDowngrade: downgrade}
	goDo(a, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return a.env.Updater.Install(ctx, req)
	}, func(err error) {
		v.sent = false
		var e *localapi.Error
		switch {
		case err == nil:
			a.showHealth()
			a.health.note = "Installing " + v.version + " from the CD-ROM: the Update line shows its progress."
			a.health.last["updater"] = time.Time{} // ask again at once
			a.health.refresh(a)
		case errors.As(err, &e) && e.Code == localapi.UpdateCodeNotNewer && !downgrade:
			// The updater knows better than our version parse: it is
			// not newer, so it is a downgrade; ask the second question.
			v.downgrade, v.stage = true, 1
			v.err, v.hint = apiRefusal(err)
		default:
			v.err, v.hint = apiRefusal(err)
		}
	})
}

// boldWrap is a.wrap in bold.
func boldWrap(a *App, indent int, s string) []screen.Line {
	var out []screen.Line
	for _, l := range a.wrap(indent, s) {
		out = append(out, bold(l.Text()))
	}
	return out
}

// compareVersions orders image versions (MAJOR.MINOR.PATCH, as the
// updater does): -1, 0, +1; 0 when either does not parse (the updater
// then decides, and says update_not_newer if it is not newer).
func compareVersions(x, y string) int {
	px, okx := parseVersion(x)
	py, oky := parseVersion(y)
	if !okx || !oky {
		return 0
	}
	for i := range px {
		switch {
		case px[i] < py[i]:
			return -1
		case px[i] > py[i]:
			return 1
		}
	}
	return 0
}

func parseVersion(s string) ([3]uint64, bool) {
	var v [3]uint64
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return v, false
		}
		v[i] = n
	}
	return v, true
}
