package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// TestHealthUpdateStates: the image, the other slot and the update as the
// updater reports them, one golden screen per update state, on the
// smallest terminal (80×24).
func TestHealthUpdateStates(t *testing.T) {
	at := now.Add(-10 * time.Minute)
	available := baseImage()
	available.Available = &localapi.Available{Version: "0.2.0", Source: "cdrom"}

	downloading := baseImage()
	downloading.Pending = true
	downloading.Update = &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateDownloading, Source: "cdrom",
		Reason: "writing slot B (write-root)", At: at}

	installed := downloading
	installed.Update = &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateInstalled, Source: "cdrom", At: at}
	installed.Other = &localapi.SlotInfo{Slot: "B", Version: "0.2.0", State: "trial"}

	rebooting := installed
	rebooting.Update = &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateRebooting, Source: "cdrom",
		Reason: "draining sessions, then rebooting into 0.2.0 in slot B", At: at}

	succeeded := localapi.Image{Version: "0.2.0", Slot: "B", Other: &localapi.SlotInfo{Slot: "A", Version: "0.1.0", State: "good"},
		Update: &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateSucceeded, Source: "cdrom",
			Reason: "0.2.0 in slot B: connector Online with ID conn-7f3a after 12s", At: at}}

	rolledBack := baseImage()
	rolledBack.Other = &localapi.SlotInfo{Slot: "B", Version: "0.2.0", State: "failed"}
	rolledBack.Update = &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateRolledBack, Source: "control_plane",
		Reason: "connector not Online after 5m0s on the third try (last: Offline (reconnecting): tunnel closed: dial tcp 203.0.113.7:443: connection refused)", At: at}

	refused := baseImage()
	refused.Update = &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateFailed, Source: "cdrom",
		Reason: "refused: update_damaged: the bundle's SHA-256 does not match the signed metadata; nothing was written", At: at}

	for _, tc := range []struct {
		name   string
		im     localapi.Image
		window string
		want   []string
	}{
		{"health-update-available", available, "", []string{"Update 0.2.0 available on CD-ROM", "U update", "slot B empty"}},
		{"health-update-downloading", downloading, "", []string{"0.2.0 (CD-ROM) downloading (pending): writing slot B"}},
		{"health-update-installed-window", installed, "Sat,Sun 02:00-04:00", []string{"0.2.0 (CD-ROM) installed (pending)",
			"reboot in the window Sat,Sun 02:00-04:00 UTC: Sun 02:00, in 14h00m"}},
		{"health-update-rebooting", rebooting, "", []string{"0.2.0 (CD-ROM) rebooting (pending): draining sessions"}},
		{"health-update-succeeded", succeeded, "", []string{"0.2.0 in slot B; slot A 0.1.0 good", "0.2.0 (CD-ROM) succeeded", "O rollback"}},
		{"health-update-rolled-back", rolledBack, "", []string{"0.1.0 in slot A; slot B 0.2.0 failed", "0.2.0 rolled_back: connector not Online after 5m0s"}},
		{"health-update-refused", refused, "", []string{"0.2.0 (CD-ROM) failed: refused: update_damaged"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := configuredRoot(t)
			if tc.window != "" {
				appendConfig(t, root, "update_window: \""+tc.window+"\"\n")
			}
			st := onlineStatus()
			st.Version = tc.im.Version
			r := newRig(t, st, tc.im, rigOpt{root: root})
			got := r.screen()
			for _, w := range tc.want {
				if !contains(got, w) {
					t.Errorf("screen lacks %q:\n%s", w, got)
				}
			}
			checkFits(t, r.a, got)
			golden(t, tc.name, got)
		})
	}
}

func appendConfig(t *testing.T, root, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(root, "config/connector.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// checkFits: the frame is exactly the terminal, the key help on its last
// row.
func checkFits(t *testing.T, a *App, got string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != a.size.Rows {
		t.Errorf("screen has %d rows, want %d", len(lines), a.size.Rows)
	}
	for i, l := range lines {
		if len(l) > a.size.Cols {
			t.Errorf("row %d is %d wide, more than %d: %q", i+1, len(l), a.size.Cols, l)
		}
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, " R re-enrol") {
		t.Errorf("last row = %q, want the key help", last)
	}
}

// TestHealthFitsSmallest: Offline with a long reason and hint, a rolled
// back update with a long reason, a clock warning and a note: on 80×24
// less important rows make room, and every row that reports a problem
// stays.
func TestHealthFitsSmallest(t *testing.T) {
	st := onlineStatus()
	st.State, st.Since = state.Reconnecting.String(), now.Add(-35*time.Second)
	st.Reason = "tunnel closed: dial tcp 203.0.113.7:443: connection refused by the control plane's load balancer after the TLS handshake"
	st.Hint = "check that the control plane is reachable from this network and that no proxy is needed (D runs diagnostics)"
	off := localapi.Duration(2*time.Minute + 3*time.Second)
	st.ClockOffset, st.ClockWarning = &off, localapi.ClockWarning(time.Duration(off))
	im := baseImage()
	im.Other = &localapi.SlotInfo{Slot: "B", Version: "0.2.0", State: "failed"}
	im.Update = &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateRolledBack,
		Reason: "connector not Online after 5m0s on the third try (last: Offline (reconnecting): tunnel closed: dial tcp 203.0.113.7:443: connection refused)"}
	r := newRig(t, st, im, rigOpt{})
	r.key('o') // a note above the key help takes a row too
	got := r.screen()
	checkFits(t, r.a, got)
	for _, w := range []string{"Offline (reconnecting)", "Why", "What to do", "! this machine's clock is 2m3s behind",
		"Network (static)", "Image", "0.2.0 rolled_back", "Rollback is not possible: 0.2.0 in slot B failed on this appliance."} {
		if !contains(got, w) {
			t.Errorf("80x24 screen lacks %q:\n%s", w, got)
		}
	}
	golden(t, "health-fit-80x24", got)

	// On a larger terminal nothing is left out.
	r = newRig(t, st, im, rigOpt{size: screen.Size{Cols: 100, Rows: 37}})
	got = r.screen()
	for _, w := range []string{"Hostname", "Control plane", "Root verity", "G send support bundle"} {
		if !contains(got, w) {
			t.Errorf("100x37 screen lacks %q:\n%s", w, got)
		}
	}
}

// TestHealthClock: the clock's offset to the control plane, and a visible
// warning past 5 s.
func TestHealthClock(t *testing.T) {
	st := onlineStatus()
	r := newRig(t, st, baseImage(), rigOpt{})
	if got := r.screen(); !contains(got, "Clock                 300ms behind the control plane's (within 5s)") ||
		!contains(got, "Sessions              3 active, 12 ended; 47.1 KiB up, 8.7 MiB down") {
		t.Errorf("clock or sessions line wrong:\n%s", got)
	}
	off := localapi.Duration(-7 * time.Second)
	st.ClockOffset = &off
	st.ClockWarning = localapi.ClockWarning(time.Duration(off))
	r.conn.Set(st)
	got := r.refresh()
	if !contains(got, "Clock                 ! this machine's clock is 7s ahead of the control plane's: check NTP") {
		t.Errorf("no clock warning for 7s ahead:\n%s", got)
	}
	golden(t, "health-clock-warning", got)
	st.ClockOffset, st.ClockWarning = nil, ""
	r.conn.Set(st)
	if got := r.refresh(); !contains(got, "Clock                 not compared yet (needs the tunnel)") {
		t.Errorf("no offset yet:\n%s", got)
	}
}

// TestUpdateFromCDROM: U asks first, Y sends exactly {source: cdrom} to
// the updater, and the Update line follows the install.
func TestUpdateFromCDROM(t *testing.T) {
	im := baseImage()
	im.Available = &localapi.Available{Version: "0.2.0", Source: "cdrom"}
	root := configuredRoot(t)
	appendConfig(t, root, "update_window: \"02:00-04:00\"\n")
	r := newRig(t, onlineStatus(), im, rigOpt{root: root})
	r.key('u')
	got := r.until("Install 0.2.0 from the CD-ROM?")
	for _, w := range []string{"into slot B", "0.1.0 in slot A keeps running", "update window 02:00-04:00 UTC (next: Sun 02:00, in 14h00m)",
		"sessions through this connector drop", "Y install"} {
		if !contains(got, w) {
			t.Errorf("confirmation lacks %q:\n%s", w, got)
		}
	}
	golden(t, "update-confirm", got)
	// N cancels: nothing is asked.
	r.key('n')
	r.until("Update 0.2.0 available on CD-ROM")
	if n := len(r.upd.Installs()); n != 0 {
		t.Fatalf("N sent %d install requests", n)
	}
	r.key('u', 'y')
	r.until("Installing 0.2.0 from the CD-ROM")
	if diff := cmp.Diff([]localapi.InstallRequest{{Source: "cdrom"}}, r.upd.Installs()); diff != "" {
		t.Errorf("install requests (-want +got):\n%s", diff)
	}
	got = r.until("0.2.0 (CD-ROM) downloading (pending)")
	if strings.Contains(got, "available on CD-ROM") {
		t.Errorf("the offer is still shown while installing:\n%s", got)
	}
	// The updater's progress shows as it comes.
	next := r.upd.Image()
	next.Update.State, next.Update.Reason = localapi.UpdateInstalled, ""
	r.upd.Set(next)
	if got := r.refresh(); !contains(got, "0.2.0 (CD-ROM) installed (pending); reboot in the window 02:00-04:00 UTC: Sun 02:00, in 14h00m") {
		t.Errorf("installed update line:\n%s", got)
	}
}

// TestUpdateRefused: a 409 shows the updater's message and hint on the
// confirmation screen; nothing else happens.
func TestUpdateRefused(t *testing.T) {
	im := baseImage()
	im.Available = &localapi.Available{Version: "0.2.0", Source: "cdrom"}
	r := newRig(t, onlineStatus(), im, rigOpt{})
	r.upd.Refuse(&localapi.Error{Status: 409, Code: localapi.UpdateCodeNoSpace,
		Message: "the root image (96.0 MiB) does not fit slot B (64.0 MiB)", Hint: "this appliance's disk layout is too small for 0.2.0; deploy the new OVA"})
	r.key('u', 'y')
	got := r.until("refused (update_no_space)")
	for _, w := range []string{"the root image (96.0 MiB) does not fit slot B (64.0 MiB)", "hint: this appliance's disk layout is too small"} {
		if !contains(got, w) {
			t.Errorf("refusal screen lacks %q:\n%s", w, got)
		}
	}
	golden(t, "update-refused", got)
	r.esc()
	if got := r.screen(); !contains(got, "Update 0.2.0 available on CD-ROM") {
		t.Errorf("Esc did not return to the health screen:\n%s", got)
	}
}

// TestUpdateDowngrade: an older version on the CD-ROM asks twice, the
// second time in plain words, and only then sends confirm_downgrade.
func TestUpdateDowngrade(t *testing.T) {
	im := localapi.Image{Version: "0.2.0", Slot: "B", Other: &localapi.SlotInfo{Slot: "A", Version: "0.1.0", State: "good"},
		Available: &localapi.Available{Version: "0.1.0", Source: "cdrom"}}
	r := newRig(t, onlineStatus(), im, rigOpt{})
	r.upd.OlderOnCD(true)
	r.key('u')
	r.until("It is OLDER than the running 0.2.0")
	r.key('y')
	got := r.until("Really DOWNGRADE from 0.2.0 to 0.1.0?")
	if n := len(r.upd.Installs()); n != 0 {
		t.Fatalf("the first Y of a downgrade sent %d requests", n)
	}
	golden(t, "update-downgrade-confirm", got)
	r.key('n') // the second question cancels too
	r.until("Update 0.1.0 available on CD-ROM")
	r.key('u', 'y', 'y')
	r.until("Installing 0.1.0 from the CD-ROM")
	if diff := cmp.Diff([]localapi.InstallRequest{{Source: "cdrom", ConfirmDowngrade: true}}, r.upd.Installs()); diff != "" {
		t.Errorf("install requests (-want +got):\n%s", diff)
	}
}

// TestUpdateNotNewerAsksForDowngrade: when the console cannot tell (a
// version it does not parse), the updater's update_not_newer turns into
// the second, downgrade question.
func TestUpdateNotNewerAsksForDowngrade(t *testing.T) {
	im := localapi.Image{Version: "0.2.0-dev", Slot: "A", Available: &localapi.Available{Version: "0.1.0", Source: "cdrom"}}
	r := newRig(t, onlineStatus(), im, rigOpt{})
	r.upd.OlderOnCD(true)
	r.key('u', 'y')
	got := r.until("Really DOWNGRADE from 0.2.0-dev to 0.1.0?")
	if !contains(got, "refused (update_not_newer): 0.1.0 is not newer than the running 0.2.0-dev") {
		t.Errorf("the updater's answer is not shown:\n%s", got)
	}
	r.key('y')
	r.until("Installing 0.1.0 from the CD-ROM")
	want := []localapi.InstallRequest{{Source: "cdrom"}, {Source: "cdrom", ConfirmDowngrade: true}}
	if diff := cmp.Diff(want, r.upd.Installs()); diff != "" {
		t.Errorf("install requests (-want +got):\n%s", diff)
	}
}

// TestRollback: O rolls back to the other slot's good image after Y; with
// nothing good there O says why and asks nothing.
func TestRollback(t *testing.T) {
	good := localapi.Image{Version: "0.2.0", Slot: "B", Other: &localapi.SlotInfo{Slot: "A", Version: "0.1.0", State: "good"}}
	r := newRig(t, onlineStatus(), good, rigOpt{})
	r.key('o')
	got := r.until("Roll back to 0.1.0 in slot A?")
	if !contains(got, "reboots at once into 0.1.0 (slot A)") {
		t.Errorf("rollback confirmation:\n%s", got)
	}
	golden(t, "rollback-confirm", got)
	r.key('y')
	r.until("The updater took it: the appliance reboots now into 0.1.0 (slot A).")
	if diff := cmp.Diff([]localapi.RollbackRequest{{Confirm: true}}, r.upd.Rollbacks()); diff != "" {
		t.Errorf("rollback requests (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name  string
		other *localapi.SlotInfo
		want  string
	}{
		{"empty", &localapi.SlotInfo{Slot: "B", State: "empty"}, "Rollback is not possible: slot B holds no image."},
		{"none", nil, "Rollback is not possible: slot B holds no image."},
		{"failed", &localapi.SlotInfo{Slot: "B", Version: "0.2.0", State: "failed"}, "Rollback is not possible: 0.2.0 in slot B failed on this appliance."},
		{"trial", &localapi.SlotInfo{Slot: "B", Version: "0.2.0", State: "trial"}, "Rollback is not possible: 0.2.0 in slot B is being tried."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := baseImage()
			im.Other = tc.other
			r := newRig(t, onlineStatus(), im, rigOpt{})
			if strings.Contains(r.screen(), "O rollback") {
				t.Errorf("O offered in the key help:\n%s", r.screen())
			}
			r.key('o')
			if got := r.screen(); !contains(got, tc.want) {
				t.Errorf("O with slot B %s:\n%s", tc.name, got)
			}
			if n := len(r.upd.Rollbacks()); n != 0 {
				t.Errorf("O sent %d rollback requests", n)
			}
			r.key('x') // any key clears the note
			if got := r.screen(); strings.Contains(got, "Rollback is not possible") {
				t.Errorf("the note stays after the next key:\n%s", got)
			}
		})
	}
}

// TestNoUpdater: off the appliance (no updater answers) the image comes
// from os-release and U and O say why they cannot.
func TestNoUpdater(t *testing.T) {
	a, _ := healthScreen(t, onlineStatus(), nil)
	a.env.Updater = localapi.NewUpdaterClient(filepath.Join(socketDir(t), "none.sock"))
	a.health.last = map[string]time.Time{}
	a.health.imgOK = false
	a.health.refresh(a)
	drain(t, a)
	got := a.frame().String()
	for _, w := range []string{"Image                 0.1.0, slot A, connector 0.1.0", "no image updater at /"} {
		if !contains(got, w) {
			t.Errorf("screen lacks %q:\n%s", w, got)
		}
	}
	a.cur.key(a, screen.Key{Kind: screen.KeyRune, Rune: 'u'})
	if got := a.frame().String(); !contains(got, "No update: the image updater does not answer") {
		t.Errorf("U without an updater:\n%s", got)
	}
}

// TestUpdaterGoesAway: when the updater stops answering after it did, the
// screen keeps what it said and says since when it is silent.
func TestUpdaterGoesAway(t *testing.T) {
	_, upd := serveUpdater(t, baseImage())
	a, _ := healthScreen(t, onlineStatus(), nil)
	a.env.Updater = upd
	a.health.last = map[string]time.Time{}
	a.health.refresh(a)
	drain(t, a)
	a.env.Updater = localapi.NewUpdaterClient(filepath.Join(socketDir(t), "gone.sock"))
	a.health.last = map[string]time.Time{}
	a.health.refresh(a)
	drain(t, a)
	got := a.frame().String()
	for _, w := range []string{"0.1.0 in slot A; slot B empty", "Updater no answer since 0s ago: at /", "connect: no such file or directory"} {
		if !contains(got, w) {
			t.Errorf("screen lacks %q:\n%s", w, got)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		x, y string
		want int
	}{
		{"0.1.0", "0.2.0", -1}, {"0.10.0", "0.9.9", 1}, {"1.0.0", "1.0.0", 0}, {"0.2.0-dev", "0.1.0", 0}, {"", "0.1.0", 0},
	} {
		if got := compareVersions(tc.x, tc.y); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.x, tc.y, got, tc.want)
		}
	}
}
