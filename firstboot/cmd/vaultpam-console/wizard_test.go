package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vaultpam/appliance/connector/localapi"
)

const (
	goodToken = "WQBMX5KWDBQXSZ8DM906"    // canonical
	goodTyped = "wqbmx-5kwdb-qxsz8-dm9o6" // as a person types it: lower case, dashes, O for 0
	typoToken = "WQBMX5KWDBQXSZ8DM907"    // last character wrong
	typoTyped = "WQBMX5KWDBQXSZ8DM907"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWizardStatic walks the whole wizard with a static address, through
// an invalid IP and a typo'd token, and ends enrolled.
func TestWizardStatic(t *testing.T) {
	h := newHarness(t)
	cp := h.controlPlane("127.0.0.1:0")
	port := cp[strings.LastIndex(cp, ":")+1:]
	rep := []string{port, "PORT"}
	const s = "w"
	h.start(s, "tty1", "--ovf-env", "/nonexistent/ovf-env.xml")
	h.golden("wizard-0-welcome", h.waitFor(s, "Enter begin setup"), rep...)
	h.keys(s, "Enter")
	h.golden("wizard-1-links", h.waitFor(s, "connected"), rep...)
	h.keys(s, "Enter")
	h.waitFor(s, "Settings for eth0")
	h.keys(s, "Right", "Enter")
	h.typeText(s, "192.0.2.300/24")
	h.keys(s, "Enter")
	h.golden("wizard-2-invalid-ip", h.waitFor(s, "is not an IP address with prefix"), rep...)
	h.keys(s, "C-u")
	h.typeText(s, "192.0.2.10/24")
	h.keys(s, "Enter")
	h.typeText(s, "192.0.2.1")
	h.keys(s, "Enter")
	h.typeText(s, "192.0.2.53")
	h.keys(s, "Enter", "Enter", "C-u")
	h.typeText(s, "vaultpam-test")
	h.keys(s, "Enter")
	h.golden("wizard-3-network", h.waitFor(s, "Only if outbound HTTPS"), rep...)
	h.keys(s, "Enter")
	h.waitFor(s, "Control plane URL")
	h.keys(s, "C-u")
	h.typeText(s, "https://127.0.0.1:"+port)
	h.keys(s, "Enter", "C-u")
	h.typeText(s, "test-connector-1")
	h.golden("wizard-3b-control-plane", h.waitFor(s, "test-connector-1_"), rep...)
	h.keys(s, "Enter")
	h.waitFor(s, "Enrolment token")
	h.typeText(s, typoTyped)
	h.keys(s, "Enter")
	scr := h.waitFor(s, "Token has a typo")
	h.golden("wizard-4-token-typo", scr, rep...)
	if strings.Contains(scr, "WQBMX") {
		t.Errorf("the token is on the screen:\n%s", scr)
	}
	h.keys(s, "C-u")
	h.typeText(s, goodTyped)
	h.keys(s, "Enter")
	h.golden("wizard-5-summary", h.waitFor(s, "Nothing has been changed yet"), rep...)
	if got := h.fake.Submits(); len(got) != 0 {
		t.Fatalf("token handed over before apply: %d times", len(got))
	}
	h.keys(s, "Enter")
	scr = h.waitFor(s, "Setup is complete")
	h.golden("wizard-6-done", scr, rep...)

	if diff := cmp.Diff([]string{goodToken}, h.fake.Submits()); diff != "" {
		t.Errorf("tokens handed to the connector (-want +got):\n%s", diff)
	}
	unit := readFile(t, filepath.Join(h.root, "config/network/10-vaultpam.network"))
	for _, want := range []string{"Name=eth0", "Address=192.0.2.10/24", "Gateway=192.0.2.1", "DNS=192.0.2.53"} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("network unit lacks %s:\n%s", want, unit)
		}
	}
	if got := readFile(t, filepath.Join(h.root, "config/hostname")); got != "vaultpam-test\n" {
		t.Errorf("/config/hostname = %q, want vaultpam-test", got)
	}
	if got := readFile(t, filepath.Join(h.root, "proc/sys/kernel/hostname")); got != "vaultpam-test" {
		t.Errorf("kernel hostname set to %q, want vaultpam-test", got)
	}
	cy := readFile(t, filepath.Join(h.root, "config/connector.yaml"))
	for _, want := range []string{"control_plane_url: https://127.0.0.1:" + port, "connector_name: test-connector-1", "control_plane_ca_file: /config/ca.pem"} {
		if !strings.Contains(cy, want) {
			t.Errorf("connector.yaml lacks %q:\n%s", want, cy)
		}
	}
	assertNoToken(t, h)
	cmds := h.commands()
	for _, want := range []string{"systemctl restart systemd-networkd", "systemctl restart systemd-timesyncd", "systemctl restart vaultpam-connector"} {
		if !strings.Contains(cmds, want+"\n") {
			t.Errorf("commands run lack %q:\n%s", want, cmds)
		}
	}
	if out := run(t, "ip", "-n", h.ns, "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, "192.0.2.10/24") {
		t.Errorf("eth0 has no 192.0.2.10/24:\n%s", out)
	}
	h.keys(s, "Enter")
	h.waitFor(s, "Online")
}

// assertNoToken checks that neither token form is in any file under the
// root or in the commands' arguments.
func assertNoToken(t *testing.T, h *harness) {
	t.Helper()
	filepath.Walk(h.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, tok := range []string{goodToken, "WQBMX-5KWDB", strings.ToLower(goodToken), "wqbmx-5kwdb"} {
			if strings.Contains(string(b), tok) {
				t.Errorf("%s holds the token", p)
			}
		}
		return nil
	})
	if strings.Contains(strings.ToUpper(h.commands()), "WQBMX") {
		t.Errorf("a command got the token in its arguments:\n%s", h.commands())
	}
}

// TestWizardFailingDiagnostic: the control plane's name does not resolve
// through the DNS server given; the screen names the step, the operator
// goes back, fixes the URL, and setup completes.
func TestWizardFailingDiagnostic(t *testing.T) {
	h := newHarness(t)
	cp := h.controlPlane("127.0.0.1:0")
	port := cp[strings.LastIndex(cp, ":")+1:]
	rep := []string{port, "PORT"}
	const s = "d"
	h.start(s, "tty1", "--ovf-env", "/nonexistent/ovf-env.xml")
	h.waitFor(s, "Enter begin setup")
	h.startOn("serial", "ttyS0", serial, "--ovf-env", "/nonexistent/ovf-env.xml")
	h.answerStatic(s, "https://cp.example.test:"+port, goodToken)
	scr := h.waitFor(s, "Setup stopped at the failed step")
	h.golden("wizard-7-dns-fails", scr, rep...)
	if !strings.Contains(scr, "DNS: cp.example.test does not resolve via 192.0.2.53") {
		t.Errorf("failure does not name the DNS step and server:\n%s", scr)
	}
	// The other console, following, shows where and why it stopped.
	scr = h.waitFor("serial", "Setup on tty1 stopped at the failed step: DNS.")
	for _, want := range []string{"DNS: cp.example.test does not resolve", "hint: press E to go back", "The operator on tty1 can edit"} {
		if !strings.Contains(scr, want) {
			t.Errorf("the other console lacks %q:\n%s", want, scr)
		}
	}
	if n := len(h.fake.Submits()); n != 0 {
		t.Errorf("token handed over %d times after a failed diagnostic, want 0", n)
	}
	h.keys(s, "e")
	h.waitFor(s, "Nothing has been changed yet")
	h.keys(s, "2")
	h.waitFor(s, "Control plane URL")
	h.keys(s, "C-u")
	h.typeText(s, "https://127.0.0.1:"+port)
	h.keys(s, "Enter", "Enter")
	h.waitFor(s, "Nothing has been changed yet")
	h.keys(s, "Enter")
	h.waitFor(s, "Setup is complete")
	h.waitFor("serial", "State                 Online")
	if diff := cmp.Diff([]string{goodToken}, h.fake.Submits()); diff != "" {
		t.Errorf("tokens handed to the connector (-want +got):\n%s", diff)
	}
}

// TestOneWizardAtATime: both consoles offer setup; once tty1 runs the
// wizard, ttyS0 says so and follows its progress.
func TestOneWizardAtATime(t *testing.T) {
	h := newHarness(t)
	h.start("a", "tty1", "--ovf-env", "/nonexistent/ovf-env.xml")
	h.start("b", "ttyS0", "--ovf-env", "/nonexistent/ovf-env.xml")
	h.waitFor("b", "Enter begin setup") // both consoles offer setup until one starts
	h.waitFor("a", "Enter begin setup")
	h.keys("a", "Enter")
	h.waitFor("a", "Choose the network card")
	// ttyS0 notices by itself, without a key press.
	h.golden("wizard-locked", h.waitFor("b", "Setup is running on tty1"))
	h.keys("a", "Enter")
	h.waitFor("b", "Network settings")
	// tty1 gives up (Esc to the welcome screen): ttyS0 may set up.
	h.keys("a", "Escape", "Escape")
	h.waitFor("a", "Enter begin setup")
	h.waitFor("b", "Enter begin setup")
	h.keys("b", "Enter")
	h.waitFor("b", "Choose the network card")
	h.waitFor("a", "Setup is running on ttyS0")
}

// TestOVFPartial: the OVF environment has an invalid IP and no token; the
// wizard asks only for those, with the OVF values in place.
func TestOVFPartial(t *testing.T) {
	h := newHarness(t)
	h.controlPlane("192.0.2.1:8443")
	doc := readFile(t, "../../testdata/ovf-env-full.xml")
	doc = strings.Replace(doc, `oe:value="192.0.2.10/24"`, `oe:value="192.0.2.300/24"`, 1)
	doc = strings.Replace(doc, `oe:value="WQBMX-5KWDB-QXSZ8-DM906"`, `oe:value=""`, 1)
	env := filepath.Join(filepath.Dir(h.log), "ovf-env.xml")
	os.WriteFile(env, []byte(doc), 0o644)
	const s = "p"
	h.start(s, "tty1", "--ovf-env", env)
	h.waitFor(s, "only what is missing or invalid is asked")
	h.keys(s, "Enter")
	scr := h.waitFor(s, "Settings for eth0")
	h.golden("ovf-partial-network", scr)
	if !strings.Contains(scr, `IP address: "192.0.2.300/24" is not an IP address with prefix`) {
		t.Errorf("the invalid OVF address is not pointed out:\n%s", scr)
	}
	h.keys(s, "C-u")
	h.typeText(s, "192.0.2.10/24")
	h.keys(s, "Enter", "Enter", "Enter", "Enter", "Enter", "Enter")
	h.waitFor(s, "Enrolment token") // control plane and name came from OVF: not asked
	h.typeText(s, goodToken)
	h.keys(s, "Enter")
	scr = h.waitFor(s, "Nothing has been changed yet")
	for _, want := range []string{"https://192.0.2.1:8443", "ovf-connector-1", "vaultpam-ovf", "Static 192.0.2.10/24 via 192.0.2.1"} {
		if !strings.Contains(scr, want) {
			t.Errorf("summary lacks OVF value %q:\n%s", want, scr)
		}
	}
	h.keys(s, "Enter")
	h.waitFor(s, "Setup is complete")
	if diff := cmp.Diff([]string{goodToken}, h.fake.Submits()); diff != "" {
		t.Errorf("tokens handed over (-want +got):\n%s", diff)
	}
}

// TestTokenRefused: the connector refuses the token (expired); the screen
// says so with the connector's hint, T takes a new token, and setup ends
// enrolled. The refused token is not sent again.
func TestTokenRefused(t *testing.T) {
	const expired = "BXQTR0Q3A31M4Z3CECTD"
	h := newHarness(t)
	h.fake.Refuse[expired] = &localapi.Error{Status: 400, Code: "token_expired", Message: "the token has expired",
		Hint: "create a new token in the dashboard (Connectors -> Add Connector)"}
	cp := h.controlPlane("127.0.0.1:0")
	const s = "r"
	h.start(s, "tty1", "--ovf-env", "/nonexistent/ovf-env.xml")
	h.answerStatic(s, "https://"+cp, expired)
	scr := h.waitFor(s, "T new token")
	for _, want := range []string{"Token: the token has expired", "hint: create a new token in the dashboard"} {
		if !strings.Contains(scr, want) {
			t.Errorf("refusal screen lacks %q:\n%s", want, scr)
		}
	}
	h.keys(s, "r") // retry without a new token: the used one is not sent again
	h.waitFor(s, "already handed over")
	h.keys(s, "t")
	h.waitFor(s, "Enrolment token")
	h.typeText(s, goodToken)
	h.keys(s, "Enter")
	h.waitFor(s, "Setup is complete")
	if diff := cmp.Diff([]string{expired, goodToken}, h.fake.Submits()); diff != "" {
		t.Errorf("tokens handed over (-want +got):\n%s", diff)
	}
}
