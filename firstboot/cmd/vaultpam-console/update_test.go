package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/support"
	"github.com/vaultpam/appliance/firstboot/internal/fakeupdater"
)

// TestHealthUpdateKeys drives the real binary, unprivileged, against a
// fake updater on its own socket (--updater), shared with the console
// through the group as the appliance's /run/vaultpam-update/update.sock is
// (vaultpam, 0660): the CD-ROM's offer, U and Y, the progress, O and Y,
// then G sends a support bundle through the fake connector.
func TestHealthUpdateKeys(t *testing.T) {
	h := newHarness(t)
	cp := h.controlPlane("127.0.0.1:0")
	st := onlineStatus()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	st.SupportRecipient = id.Recipient().String()
	h.configured("https://"+cp, st)
	upd := fakeupdater.New(localapi.Image{Version: "0.1.0", Slot: "A", Other: &localapi.SlotInfo{Slot: "B", State: "empty"},
		Available: &localapi.Available{Version: "0.2.0", Source: "cdrom"}})
	sock := filepath.Join(filepath.Dir(h.socket), "update.sock")
	fakeupdater.Serve(t, upd, sock)
	h.share(sock)

	const s = "u"
	h.start(s, "tty1", "--updater", sock)
	h.waitFor(s, "Update 0.2.0 available on CD-ROM")
	h.keys(s, "U")
	h.waitFor(s, "Install 0.2.0 from the CD-ROM?")
	h.keys(s, "Y")
	h.waitFor(s, "Installing 0.2.0 from the CD-ROM")
	if diff := cmp.Diff([]localapi.InstallRequest{{Source: "cdrom"}}, upd.Installs()); diff != "" {
		t.Errorf("install requests (-want +got):\n%s", diff)
	}
	h.waitFor(s, "0.2.0 (CD-ROM) downloading (pending)")

	// The new image runs and is kept: O rolls back to the old one.
	upd.Set(localapi.Image{Version: "0.2.0", Slot: "B", Other: &localapi.SlotInfo{Slot: "A", Version: "0.1.0", State: "good"},
		Update: &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateSucceeded, Source: "cdrom", Reason: "Online"}})
	h.waitFor(s, "0.2.0 (CD-ROM) succeeded: Online")
	h.keys(s, "O")
	h.waitFor(s, "Roll back to 0.1.0 in slot A?")
	h.keys(s, "Y")
	h.waitFor(s, "The updater took it")
	if diff := cmp.Diff([]localapi.RollbackRequest{{Confirm: true}}, upd.Rollbacks()); diff != "" {
		t.Errorf("rollback requests (-want +got):\n%s", diff)
	}
	h.keys(s, "Escape")
	h.waitFor(s, "R re-enrol")

	// G: the console, as nobody with the sockets' group only, collects,
	// encrypts and hands the bundle to the connector.
	h.keys(s, "G")
	h.golden("health-support-sent", h.waitFor(s, "Support bundle sent."), sizeLine(h.screen(s)), "SIZE")
	bundles := h.fake.Bundles()
	if len(bundles) != 1 {
		t.Fatalf("the connector got %d bundles, want 1", len(bundles))
	}
	b, err := support.Open(bytes.NewReader(bundles[0].Data), id)
	if err != nil {
		t.Fatalf("the bundle does not decrypt: %v", err)
	}
	got := map[string]string{}
	for _, p := range b.Parts {
		got[p.Name] = string(p.Data)
	}
	for name, want := range map[string]string{
		"image/status.json":              `"version": "0.2.0"`,
		"verity/dmsetup-status.txt":      "root: 0 180000 verity V",
		"journal/vaultpam-connector.log": "heartbeat ok",
		"diagnostics.txt":                "TLS",
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("part %s lacks %q:\n%s", name, want, got[name])
		}
	}
}

// sizeLine returns the support screen's size text, which depends on the
// temp paths in the bundle.
func sizeLine(screen string) string {
	for _, l := range strings.Split(screen, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Size" {
			return strings.Join(f[1:], " ")
		}
	}
	return "\x00"
}

// TestHealthUpdaterSocketNeedsGroup: an updater socket the console's
// group may not use (root's only) shows as such on the screen, so a
// missing group on the appliance would be seen, not guessed.
func TestHealthUpdaterSocketNeedsGroup(t *testing.T) {
	h := newHarness(t)
	cp := h.controlPlane("127.0.0.1:0")
	h.configured("https://"+cp, onlineStatus())
	upd := fakeupdater.New(localapi.Image{Version: "0.1.0", Slot: "A", Available: &localapi.Available{Version: "0.2.0", Source: "cdrom"}})
	sock := filepath.Join(filepath.Dir(h.socket), "update.sock")
	fakeupdater.Serve(t, upd, sock)
	if err := os.Chmod(sock, 0o600); err != nil {
		t.Fatal(err)
	}
	const s = "n"
	h.start(s, "tty1", "--updater", sock)
	scr := h.waitFor(s, "no image updater at")
	if !strings.Contains(scr, "permission denied") || strings.Contains(scr, "available on CD-ROM") {
		t.Errorf("screen with a root-only updater socket:\n%s", scr)
	}
}
