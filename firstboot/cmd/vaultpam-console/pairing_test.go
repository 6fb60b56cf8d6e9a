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
