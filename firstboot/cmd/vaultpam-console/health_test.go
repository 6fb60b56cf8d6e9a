package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// configured writes settings as a finished wizard would and makes the fake
// connector report st.
func (h *harness) configured(url string, st localapi.Status) {
	h.t.Helper()
	s := settings.Settings{Interface: "eth0", Address: "192.0.2.10/24", Gateway: "192.0.2.1", DNS: "192.0.2.53",
		Hostname: "vaultpam-dc1", ControlPlaneURL: url, ConnectorName: "dc1-connector-1"}
	if _, err := s.Write(h.root); err != nil {
		h.t.Fatal(err)
	}
	run(h.t, "ip", "-n", h.ns, "addr", "add", "192.0.2.10/24", "dev", "eth0")
	h.fake.Set(st)
}

func onlineStatus() localapi.Status {
	return localapi.Status{State: state.Online.String(), Mode: localapi.ModeAutonomousRestart, DataDir: "/data", DataDurable: true,
		ConnectorID: "conn-7f3a", ConnectorName: "dc1-connector-1", Version: "0.1.0", LastHeartbeat: time.Now().UTC(),
		HeartbeatInterval: localapi.Duration(10 * time.Second)}
}

// TestHealthActions drives every health-screen action on the real binary:
// logs, diagnostics, re-enrol, edit network, and reboot / shut down, which
// ask first and run only after Y.
func TestHealthActions(t *testing.T) {
	h := newHarness(t)
	cp := h.controlPlane("127.0.0.1:0")
	h.configured("https://"+cp, onlineStatus())
	const s = "h"
	h.start(s, "tty1")
	h.waitFor(s, "State                 Online")

	// Logs: journalctl for the connector's unit, newest at the bottom.
	h.keys(s, "l")
	scr := h.waitFor(s, "    line 30")
	if !strings.Contains(h.commands(), "journalctl -u vaultpam-connector -n 200 --no-pager") {
		t.Errorf("logs did not come from the connector's journal:\n%s", h.commands())
	}
	if !strings.Contains(scr, "Rows 41-60 of 60") { // 20 rows a page on the 25-row terminal
		t.Errorf("logs screen does not show the newest lines:\n%s", scr)
	}
	h.keys(s, "Escape")
	h.waitFor(s, "R re-enrol")

	// Diagnostics with the saved settings.
	h.keys(s, "d")
	h.waitFor(s, "All checks passed.")
	h.keys(s, "Escape")
	h.waitFor(s, "R re-enrol")

	// Reboot: N cancels, nothing runs.
	h.keys(s, "b")
	h.golden("health-confirm-reboot", h.waitFor(s, "Reboot the appliance?"))
	h.keys(s, "n")
	h.waitFor(s, "R re-enrol")
	if strings.Contains(h.commands(), "systemctl reboot") {
		t.Fatalf("reboot ran without confirmation:\n%s", h.commands())
	}

	// Re-enrol with a new token.
	h.keys(s, "r")
	h.waitFor(s, "choose Recover")
	h.typeText(s, goodTyped)
	h.keys(s, "Enter")
	h.waitFor(s, "Done: dc1-connector-1 is Online")
	if diff := cmp.Diff([]string{goodToken}, h.fake.Submits()); diff != "" {
		t.Errorf("tokens handed over (-want +got):\n%s", diff)
	}
	h.keys(s, "Enter")
	h.waitFor(s, "R re-enrol")

	// Edit network: change the address, everything else as saved.
	h.keys(s, "n")
	h.waitFor(s, "Setup 1 of 2: Network card")
	h.keys(s, "Enter")
	h.waitFor(s, "Settings for eth0")
	h.keys(s, "Down", "C-u")
	h.typeText(s, "192.0.2.11/24")
	h.keys(s, "Enter", "Enter", "Enter", "Enter", "Enter", "Enter")
	h.waitFor(s, "Setup 2 of 2: Summary")
	h.keys(s, "Enter")
	// On trial: kept with K once the control plane is reachable.
	h.waitFor(s, "K keeps the new settings")
	h.keys(s, "k")
	h.waitFor(s, "Network settings applied.")
	unit := readFile(t, filepath.Join(h.root, "config/network/10-vaultpam.network"))
	if !strings.Contains(unit, "Address=192.0.2.11/24\n") {
		t.Errorf("network unit not updated:\n%s", unit)
	}
	h.keys(s, "Enter")
	h.waitFor(s, "R re-enrol")

	// Reboot, confirmed.
	h.keys(s, "b")
	h.waitFor(s, "Reboot the appliance?")
	h.keys(s, "y")
	h.waitFor(s, "requested")
	if !strings.Contains(h.commands(), "systemctl reboot\n") {
		t.Errorf("reboot did not run:\n%s", h.commands())
	}

	// Shut down, confirmed, on a fresh console.
	// (Start the new session first: a tmux server with no session left
	// exits and would race the next new-session.)
	h.start("h2", "tty1")
	run(t, "tmux", "-L", h.tmux, "kill-session", "-t", s)
	h.waitFor("h2", "State                 Online")
	h.keys("h2", "s")
	h.waitFor("h2", "Shut down the appliance?")
	// The helper already asked for a reboot: it refuses more power
	// requests for a while (the appliance is going down).
	h.keys("h2", "y")
	h.waitFor("h2", "error: a reboot was requested")
	if strings.Contains(h.commands(), "systemctl poweroff") {
		t.Fatalf("power-off ran right after a reboot was requested:\n%s", h.commands())
	}
	// A helper that starts again (after the reboot) takes it.
	h.stopHelper()
	h.startHelper()
	h.keys("h2", "y")
	h.waitFor("h2", "requested.")
	if !strings.Contains(h.commands(), "systemctl poweroff\n") {
		t.Errorf("shut down did not run:\n%s", h.commands())
	}
}

// TestNeedsRecoveryScreen: guided mode lost its identity; the console says
// what happened and takes the recovery token.
func TestNeedsRecoveryScreen(t *testing.T) {
	h := newHarness(t)
	st := onlineStatus()
	st.State, st.Mode, st.DataDurable, st.Reason = state.NeedsRecovery.String(), localapi.ModeGuidedRecovery, false, "no identity in /data after restart"
	h.configured("https://192.0.2.1:8443", st)
	const s = "n"
	h.start(s, "ttyS0")
	h.waitFor(s, "What happened")
	h.typeText(s, goodToken)
	h.keys(s, "Enter")
	h.waitFor(s, "Online")
	if diff := cmp.Diff([]string{goodToken}, h.fake.Submits()); diff != "" {
		t.Errorf("tokens handed over (-want +got):\n%s", diff)
	}
}
