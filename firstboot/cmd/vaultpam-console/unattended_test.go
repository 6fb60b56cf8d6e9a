package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vaultpam/appliance/connector/localapi"
)

// ovfFixture is a complete OVF environment: control plane 192.0.2.1:8443,
// static 192.0.2.10/24, connector ovf-connector-1, the good token.
func ovfFixture(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../testdata/ovf-env-full.xml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startBoth starts the console on a VGA-like tty1 and a serial-like ttyS0
// with the same flags, as systemd does at boot.
func (h *harness) startBoth(extra ...string) {
	h.t.Helper()
	h.startOn("tty1", "tty1", vga, extra...)
	h.startOn("ttyS0", "ttyS0", serial, extra...)
}

// restart ends the console in session and starts it again, as
// Restart=always does. (The new session starts first: a tmux server with
// no session left exits and would race the next new-session.)
func (h *harness) restart(session, tty string, term terminal, extra ...string) string {
	h.t.Helper()
	again := session + "-again"
	h.startOn(again, tty, term, extra...)
	run(h.t, "tmux", "-L", h.tmux, "kill-session", "-t", session)
	return again
}

// TestOVFUnattended: every property in the OVF environment → no questions,
// config written, the token handed over exactly once, and both consoles,
// tty1 and ttyS0, end on the health screen without a key press. A
// restarted console (a reboot) shows the health screen and hands nothing
// over again.
func TestOVFUnattended(t *testing.T) {
	h := newHarness(t)
	h.controlPlane("192.0.2.1:8443")
	fixture := ovfFixture(t)
	h.startBoth("--ovf-env", fixture)
	for _, s := range []string{"tty1", "ttyS0"} {
		scr := h.waitFor(s, "State                 Online")
		for _, want := range []string{"VaultPAM Connector - Health", "(ID conn-0001)", "https://192.0.2.1:8443"} {
			if !strings.Contains(scr, want) {
				t.Errorf("%s: health screen lacks %q:\n%s", s, want, scr)
			}
		}
	}
	if diff := cmp.Diff([]string{goodToken}, h.fake.Submits()); diff != "" {
		t.Errorf("tokens handed to the connector (-want +got):\n%s", diff)
	}
	cy := readFile(t, filepath.Join(h.root, "config/connector.yaml"))
	for _, want := range []string{"control_plane_url: https://192.0.2.1:8443", "connector_name: ovf-connector-1"} {
		if !strings.Contains(cy, want) {
			t.Errorf("connector.yaml lacks %q:\n%s", want, cy)
		}
	}
	unit := readFile(t, filepath.Join(h.root, "config/network/10-vaultpam.network"))
	if !strings.Contains(unit, "Address=192.0.2.10/24\n") || !strings.Contains(unit, "NTP=192.0.2.123\n") {
		t.Errorf("network unit does not hold the OVF settings:\n%s", unit)
	}
	assertNoToken(t, h)

	// A second start (a reboot) finds the appliance configured.
	s := h.restart("ttyS0", "ttyS0", serial, "--ovf-env", fixture)
	h.waitFor(s, "State                 Online")
	if n := len(h.fake.Submits()); n != 1 {
		t.Errorf("token handed over %d times after a restart, want exactly 1", n)
	}
}

// TestOVFUnattendedFails: the control plane does not answer, so the TCP
// check fails. Both consoles show the failed step, what failed and the
// hint with no key pressed; nothing is retried, also not by a restarted
// console, and the token was never handed over. An operator then fixes
// the cause and presses R on tty1: setup completes with the OVF token and
// both consoles show the health screen.
func TestOVFUnattendedFails(t *testing.T) {
	h := newHarness(t)
	fixture := ovfFixture(t)
	h.startBoth("--ovf-env", fixture)
	const failure = "TCP: cannot connect to 192.0.2.1:8443: connection refused"
	for _, s := range []string{"tty1", "ttyS0"} {
		scr := h.waitFor(s, "Setup stopped at the failed step")
		h.golden("ovf-stopped-"+s, scr)
		for _, want := range []string{"stopped at: TCP", failure, "hint: press E"} {
			if !strings.Contains(scr, want) {
				t.Errorf("%s: stopped screen lacks %q:\n%s", s, want, scr)
			}
		}
	}
	if n := len(h.fake.Submits()); n != 0 {
		t.Errorf("token handed over %d times after a failed check, want 0", n)
	}
	s := h.restart("ttyS0", "ttyS0", serial, "--ovf-env", fixture)
	h.waitFor(s, failure)
	if n := strings.Count(h.commands(), "systemctl restart systemd-networkd"); n != 1 {
		t.Errorf("the settings were applied %d times, want once (no retry by itself):\n%s", n, h.commands())
	}

	h.controlPlane("192.0.2.1:8443")
	h.keys("tty1", "r")
	h.waitFor("tty1", "Setup is complete")
	h.waitFor(s, "State                 Online")
	h.keys("tty1", "Enter")
	h.waitFor("tty1", "State                 Online")
	if diff := cmp.Diff([]string{goodToken}, h.fake.Submits()); diff != "" {
		t.Errorf("tokens handed to the connector (-want +got):\n%s", diff)
	}
}

// TestOVFUnattendedTokenRefused: the connector refuses the OVF token. Both
// consoles show the refusal and the connector's hint; the token is not
// sent again, also not by a restarted console. E on the serial console
// asks for a new token, and setup completes with it.
func TestOVFUnattendedTokenRefused(t *testing.T) {
	h := newHarness(t)
	h.fake.Refuse[goodToken] = &localapi.Error{Status: 400, Code: "token_expired", Message: "the token has expired",
		Hint: "create a new token in the dashboard (Connectors -> Add Connector)"}
	h.controlPlane("192.0.2.1:8443")
	fixture := ovfFixture(t)
	h.startBoth("--ovf-env", fixture)
	for _, s := range []string{"tty1", "ttyS0"} {
		scr := h.waitFor(s, "Setup stopped at the failed step")
		for _, want := range []string{"stopped at: Hand over the token", "Token: the token has expired", "hint: create a new token in the dashboard"} {
			if !strings.Contains(scr, want) {
				t.Errorf("%s: stopped screen lacks %q:\n%s", s, want, scr)
			}
		}
	}
	s := h.restart("tty1", "tty1", vga, "--ovf-env", fixture)
	h.waitFor(s, "Token: the token has expired")
	if diff := cmp.Diff([]string{goodToken}, h.fake.Submits()); diff != "" {
		t.Errorf("tokens handed to the connector (-want +got):\n%s", diff)
	}

	const fresh = "BXQTR0Q3A31M4Z3CECTD"
	h.keys("ttyS0", "e")
	h.waitFor("ttyS0", "Enrolment token")
	h.typeText("ttyS0", fresh)
	h.keys("ttyS0", "Enter")
	h.waitFor("ttyS0", "Nothing has been changed yet")
	h.keys("ttyS0", "Enter")
	h.waitFor("ttyS0", "Setup is complete")
	h.waitFor(s, "State                 Online")
	if diff := cmp.Diff([]string{goodToken, fresh}, h.fake.Submits()); diff != "" {
		t.Errorf("tokens handed to the connector (-want +got):\n%s", diff)
	}
}

// TestWizardWalkedAway: an operator completes the wizard on tty1 and walks
// away. ttyS0, which followed along, shows the health screen as soon as
// setup is complete; tty1 shows it after the final screen's timeout, with
// no key pressed on either.
func TestWizardWalkedAway(t *testing.T) {
	h := newHarness(t)
	cp := h.controlPlane("127.0.0.1:0")
	flags := []string{"--ovf-env", "/nonexistent/ovf-env.xml", "--done-timeout", "3s"}
	h.startOn("tty1", "tty1", vga, flags...)
	h.waitFor("tty1", "Enter begin setup")
	h.startOn("ttyS0", "ttyS0", serial, flags...)
	h.answerStatic("tty1", "https://"+cp, goodToken)
	h.waitFor("ttyS0", "Setup is running on tty1")
	scr := h.waitFor("tty1", "Setup is complete")
	if !strings.Contains(scr, "Enter health screen (shown by itself after 3 s)") {
		t.Errorf("the final screen does not say it moves on by itself:\n%s", scr)
	}
	h.waitFor("ttyS0", "State                 Online")
	h.waitFor("tty1", "State                 Online")
}
