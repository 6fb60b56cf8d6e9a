package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/qrtext"
	"github.com/vaultpam/appliance/connector/state"
)

// pairCode is a code the fake connector shows, on the lab's address in
// the harness namespace; valid for 10 minutes from now.
func pairCode(user string) localapi.Pairing {
	const base = "https://192.0.2.1:8443"
	return localapi.Pairing{UserCode: user, VerificationURL: base + "/pair",
		VerificationURLComplete: base + "/pair?code=" + user, ExpiresAt: time.Now().Add(10 * time.Minute).UTC()}
}

// Run-specific text on the pairing screens: the countdown and the time a
// code expired.
var (
	reCountdown = regexp.MustCompile(`valid for \d+:\d\d`)
	reStamp     = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
)

func normalisePairing(s string) string {
	s = reCountdown.ReplaceAllString(s, "valid for M:SS")
	return reStamp.ReplaceAllString(s, "TIME")
}

// qrOnScreen reads the QR code on a captured screen (tmux capture-pane):
// the code's columns (the large characters beside it use the same half
// blocks), qrtext.Parse into modules, and gozxing — a decoder of its own —
// on the picture of those modules.
func qrOnScreen(t *testing.T, scr string) string {
	t.Helper()
	lines := strings.Split(scr, "\n")
	col, width := -1, 0
	for _, l := range lines {
		r := []rune(l)
		for i, c := range r {
			if c != '█' {
				continue
			}
			n := 0
			for i+n < len(r) && r[i+n] == '█' {
				n++
			}
			if n >= 21 {
				col, width = i, n
			}
			break
		}
		if col >= 0 {
			break
		}
	}
	if col < 0 {
		t.Fatalf("no QR code on the screen:\n%s", scr)
	}
	var region []string
	for _, l := range lines {
		r := []rune(l)
		// capture-pane drops trailing spaces: pad the row back.
		for len(r) < col+width {
			r = append(r, ' ')
		}
		region = append(region, string(r[col:col+width]))
	}
	c, err := qrtext.Parse(region, qrtext.Options{})
	if err != nil {
		t.Fatalf("reading the QR code's modules: %v\n%s", err, scr)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(c.Image(4))
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decoding the QR code on the screen: %v\n%s", err, scr)
	}
	return res.GetText()
}

// TestPairingScreens drives a pairing on the real binary, on a terminal
// like the VGA console (TERM=linux) and like the serial console
// (TERM=vt220): R on the health screen, then P and Enter; the code shows
// in large characters with the URL and a QR code that decodes to the URL
// with the code; it expires and a new one follows; C cancels (DELETE
// /v1/pair) back to the token input; paired again, denied; P asks for a
// new code, approved, Online. Golden screens for waiting, expired, denied
// and approved on both terminals.
func TestPairingScreens(t *testing.T) {
	for _, term := range []struct {
		name string
		term terminal
	}{{"linux", vga}, {"vt220", serial}} {
		t.Run(term.name, func(t *testing.T) {
			h := newHarness(t)
			cp := h.controlPlane("127.0.0.1:0")
			h.configured("https://"+cp, localapi.Status{State: state.AwaitingToken.String(), Mode: localapi.ModeAutonomousRestart,
				DataDir: "/data", DataDurable: true, Version: "0.1.0"})
			first, second, third, fourth := pairCode("K7Q2-MXW9"), pairCode("ABCD-EFGH"), pairCode("ZZZZ-ZZZ0"), pairCode("0000-0019")
			h.fake.SetCodes(first, second, third, fourth)
			const s = "p"
			h.startOn(s, "tty1", term.term)
			h.waitFor(s, "Waiting for token")
			h.keys(s, "r")
			h.waitFor(s, "Type P and press Enter")
			h.typeText(s, "P")
			h.keys(s, "Enter")
			scr := h.waitFor(s, "Waiting for approval")
			h.golden("pairing-waiting-"+term.name, normalisePairing(scr))
			if got := qrOnScreen(t, scr); got != first.VerificationURLComplete {
				t.Errorf("the QR code on the screen decodes to %q, want %q", got, first.VerificationURLComplete)
			}

			h.fake.Expire()
			h.golden("pairing-expired-"+term.name, normalisePairing(h.waitFor(s, "Code K7Q2-MXW9 expired.")))
			h.fake.Renew()
			scr = h.waitFor(s, "Code ABCD-EFGH, valid")
			if !strings.Contains(scr, "Code K7Q2-MXW9 expired; this is a new code.") {
				t.Errorf("the new code does not say the old one expired:\n%s", scr)
			}
			if got := qrOnScreen(t, scr); got != second.VerificationURLComplete {
				t.Errorf("after expiry the QR code decodes to %q, want %q", got, second.VerificationURLComplete)
			}

			h.keys(s, "c")
			h.waitFor(s, "Type P and press Enter")
			for deadline := time.Now().Add(30 * time.Second); h.fake.Pairings().Stops != 1; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("C did not stop the pairing (DELETE /v1/pair): %+v", h.fake.Pairings())
				}
			}

			h.typeText(s, "P")
			h.keys(s, "Enter")
			h.waitFor(s, "Code ZZZZ-ZZZ0, valid")
			h.fake.Deny()
			h.golden("pairing-denied-"+term.name, normalisePairing(h.waitFor(s, "An administrator denied the pairing of code ZZZZ-ZZZ0")))
			h.keys(s, "p")
			h.waitFor(s, "Code 0000-0019, valid")
			h.fake.Approve()
			h.golden("pairing-approved-"+term.name, normalisePairing(h.waitFor(s, "is Online (ID conn-0001)")))
			h.keys(s, "Enter")
			h.waitFor(s, "State                 Online")
			if n := len(h.fake.Submits()); n != 0 {
				t.Errorf("%d tokens handed over while pairing, want none", n)
			}
		})
	}
}

// TestOVFWithoutTokenPairs: an OVF environment with every setting but no
// token: nobody presses a key, the settings are applied and both consoles
// show the pairing code with its QR code at once; approved, both end on
// the health screen, Online, and no token was handed over.
func TestOVFWithoutTokenPairs(t *testing.T) {
	h := newHarness(t)
	h.controlPlane("192.0.2.1:8443")
	b, err := os.ReadFile(ovfFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	noToken := regexp.MustCompile(`(?m)^.*vaultpam\.token.*\n`).ReplaceAll(b, nil)
	if strings.Contains(string(noToken), "vaultpam.token") {
		t.Fatal("the fixture still has a token")
	}
	fixture := filepath.Join(filepath.Dir(h.log), "ovf-env-no-token.xml")
	if err := os.WriteFile(fixture, noToken, 0o644); err != nil {
		t.Fatal(err)
	}
	code := pairCode("K7Q2-MXW9")
	h.fake.SetCodes(code)
	h.startBoth("--ovf-env", fixture)
	for _, s := range []string{"tty1", "ttyS0"} {
		scr := h.waitFor(s, "Code K7Q2-MXW9, valid")
		if got := qrOnScreen(t, scr); got != code.VerificationURLComplete {
			t.Errorf("%s: the QR code decodes to %q, want %q", s, got, code.VerificationURLComplete)
		}
	}
	if p := h.fake.Pairings(); p.Starts != 1 {
		t.Errorf("pairing started %d times, want once (by the console that took the setup)", p.Starts)
	}
	cy := readFile(t, filepath.Join(h.root, "config/connector.yaml"))
	if !strings.Contains(cy, "connector_name: ovf-connector-1") {
		t.Errorf("connector.yaml does not hold the OVF settings:\n%s", cy)
	}
	h.fake.Approve()
	for _, s := range []string{"tty1", "ttyS0"} {
		h.waitFor(s, "State                 Online")
	}
	if n := len(h.fake.Submits()); n != 0 {
		t.Errorf("%d tokens handed over, want none", n)
	}
}

// TestWizardPairs: the wizard on the real binary: P, Enter at the token
// step; the summary says the appliance pairs; apply; the pairing screen
// after the connector step; Esc cancels (DELETE /v1/pair) back to the
// token step, where a typed token after all resumes the setup at the
// token step (the network is not applied again) and completes it.
func TestWizardPairs(t *testing.T) {
	h := newHarness(t)
	h.fake.SetCodes(pairCode("K7Q2-MXW9"))
	const s = "w"
	h.wizardToPairing(s)
	scr := h.waitFor(s, "Code K7Q2-MXW9, valid")
	if got := qrOnScreen(t, scr); got != "https://192.0.2.1:8443/pair?code=K7Q2-MXW9" {
		t.Errorf("the QR code decodes to %q", got)
	}
	applied := strings.Count(h.commands(), "systemctl restart systemd-networkd")

	h.keys(s, "Escape")
	h.waitFor(s, "Type P and press Enter to pair with a code instead")
	if p := h.fake.Pairings(); p.Stops != 1 {
		t.Errorf("Esc did not stop the pairing: %+v", p)
	}
	h.typeText(s, goodTyped)
	h.keys(s, "Enter")
	h.waitFor(s, "Setup is complete")
	if got := h.fake.Submits(); len(got) != 1 || got[0] != goodToken {
		t.Errorf("tokens handed over: %d, want the typed one once", len(got))
	}
	if n := strings.Count(h.commands(), "systemctl restart systemd-networkd"); n != applied {
		t.Errorf("the network was applied again after the cancelled pairing (%d times, want %d)", n, applied)
	}
	assertNoToken(t, h)
}

// TestWizardPairingDenied: a denied code stops the setup at the pairing
// step with the reason, offering R (ask again) and T (a token after
// all); R pairs again, the approval completes the setup, Online, and the
// final screen says no token is stored.
func TestWizardPairingDenied(t *testing.T) {
	h := newHarness(t)
	h.fake.SetCodes(pairCode("K7Q2-MXW9"), pairCode("ABCD-EFGH"))
	const s = "w"
	h.wizardToPairing(s)
	h.waitFor(s, "Code K7Q2-MXW9, valid")
	h.fake.Deny()
	scr := h.waitFor(s, "Setup stopped at the failed step")
	for _, want := range []string{"[FAIL] Pair with a code", "Pairing: an administrator denied the pairing of code K7Q2-MXW9",
		"hint: press R to ask for a new code, or T to type a token", "T new token  E edit settings  R retry"} {
		if !strings.Contains(scr, want) {
			t.Errorf("stopped screen lacks %q:\n%s", want, scr)
		}
	}
	h.keys(s, "r")
	h.waitFor(s, "Code ABCD-EFGH, valid")
	h.fake.Approve()
	scr = h.waitFor(s, "Setup is complete")
	if !strings.Contains(scr, "paired with a code; no token is stored") {
		t.Errorf("the final screen does not say it paired:\n%s", scr)
	}
	h.keys(s, "Enter")
	h.waitFor(s, "State                 Online")
	if n := len(h.fake.Submits()); n != 0 {
		t.Errorf("%d tokens handed over, want none", n)
	}
}

// wizardToPairing answers the wizard on session s (static address, the
// control plane on 192.0.2.1:8443), P, Enter at the token step, checks the
// summary and applies.
func (h *harness) wizardToPairing(s string) {
	h.t.Helper()
	h.controlPlane("192.0.2.1:8443")
	h.start(s, "tty1")
	h.waitFor(s, "Enter begin setup")
	h.keys(s, "Enter")
	h.waitFor(s, "connected")
	h.keys(s, "Enter")
	h.waitFor(s, "Settings for eth0")
	h.keys(s, "Right", "Enter")
	for _, v := range []string{"192.0.2.10/24", "192.0.2.1", "192.0.2.53"} {
		h.typeText(s, v)
		h.keys(s, "Enter")
	}
	h.keys(s, "Enter", "Enter", "Enter")
	h.waitFor(s, "Control plane URL")
	h.keys(s, "C-u")
	h.typeText(s, "https://192.0.2.1:8443")
	h.keys(s, "Enter", "Enter")
	h.waitFor(s, "Type P and press Enter to pair with a code instead")
	h.typeText(s, "P")
	h.keys(s, "Enter")
	scr := h.waitFor(s, "Nothing has been changed yet")
	if !strings.Contains(scr, "Enrolment token       none: pair with a code after applying") {
		h.t.Errorf("the summary does not say the appliance pairs:\n%s", scr)
	}
	h.keys(s, "Enter")
}

// TestPairingAgainstLab: the real connector (no token) and the real lab
// control plane, watched on the real console: R, P, Enter on the health
// screen; the code read off the screen is the one the lab lists as
// pending, the QR code decodes to the lab's approval URL with it; the lab
// approves it and the console shows the connector Online with the ID the
// lab gave it.
func TestPairingAgainstLab(t *testing.T) {
	h := newHarness(t)
	bin := buildConnector(t)
	dir := filepath.Dir(h.log)
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o700)
	state := filepath.Join(dir, "lab")
	lab := h.labIn("127.0.0.1:0", state)
	t.Cleanup(func() { lab.Close() })
	url := lab.URL()
	cy := "control_plane_url: " + url + "\ncontrol_plane_ca_file: " + filepath.Join(state, "ca.pem") + "\nconnector_name: paired-connector\n"
	os.WriteFile(filepath.Join(h.root, "config/connector.yaml"), []byte(cy), 0o644)
	os.MkdirAll(filepath.Join(h.root, "config/network"), 0o755)
	os.WriteFile(filepath.Join(h.root, "config/network/10-vaultpam.network"), []byte("[Match]\nName=eth0\n[Network]\nDHCP=ipv4\n"), 0o644)
	h.runConnector(bin, data, "")

	const s = "l"
	h.start(s, "tty1", "--socket", h.realSocket())
	h.waitFor(s, "Waiting for token")
	h.keys(s, "r")
	h.waitFor(s, "Type P and press Enter")
	h.typeText(s, "P")
	h.keys(s, "Enter")
	scr := h.waitFor(s, "Waiting for approval")
	m := regexp.MustCompile(`Code ([0-9A-Z]{4}-[0-9A-Z]{4}), valid for`).FindStringSubmatch(scr)
	if m == nil {
		t.Fatalf("no code on the screen:\n%s", scr)
	}
	code := m[1]
	pending, err := lab.Authority.ListPairings()
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].UserCode != code || pending[0].Status != "pending" {
		t.Fatalf("the lab's pairings %+v, want code %s pending", pending, code)
	}
	if got, want := qrOnScreen(t, scr), url+"/pair?code="+code; got != want {
		t.Errorf("the QR code decodes to %q, want %q", got, want)
	}
	if _, err := lab.Authority.ApprovePairing(code, "paired-connector", ""); err != nil {
		t.Fatal(err)
	}
	h.waitFor(s, "paired-connector is Online (ID conn-")
	id := connectorID(t, h)
	h.keys(s, "Enter")
	scr = h.waitFor(s, "State                 Online")
	if !strings.Contains(scr, id) {
		t.Errorf("the health screen does not show the ID %s:\n%s", id, scr)
	}
}
