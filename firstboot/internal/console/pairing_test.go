package console

import (
	"context"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/qrtext"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/fakeconnector"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// decodeQR reads a QR code out of a picture with a decoder of its own
// (gozxing, a port of ZXing), not the encoder nor qrtext.
func decodeQR(t *testing.T, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decoding the QR code on the screen: %v", err)
	}
	return res.GetText()
}

// pairingApp runs the console against a fake connector served on a real
// local API socket (the console talks to it with localapi.Client), on a
// configured root, with the clock at now.
func pairingApp(t *testing.T, st localapi.Status, sz screen.Size) (*App, *fakeconnector.Backend) {
	t.Helper()
	fake := fakeconnector.New()
	fake.Set(st)
	sock := filepath.Join(t.TempDir(), "c.sock")
	fakeconnector.Serve(t, fake, sock)
	a := New(Env{Root: configuredRoot(t), TTY: "tty1", Connector: localapi.NewClient(sock), Net: fakeNet{},
		Now: func() time.Time { return now }, Probes: fixedProbes(), Size: func() screen.Size { return sz }})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a.ctx = ctx
	a.start()
	drain(t, a)
	return a, fake
}

// until runs posted work and ticks until the screen shows want.
func until(t *testing.T, a *App, want string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s := a.frame().String()
		if strings.Contains(s, want) {
			return s
		}
		select {
		case fn := <-a.posts:
			fn()
		case <-tick.C:
			if tk, ok := a.cur.(ticker); ok {
				tk.tick(a)
			}
		case <-deadline:
			t.Fatalf("screen never showed %q:\n%s", want, s)
		}
	}
}

func typeKeys(a *App, s string) {
	for _, r := range s {
		if r == '\r' {
			a.cur.key(a, screen.Key{Kind: screen.KeyEnter})
			continue
		}
		a.cur.key(a, screen.Key{Kind: screen.KeyRune, Rune: r})
	}
}

func code(user, base string) localapi.Pairing {
	return localapi.Pairing{UserCode: user, VerificationURL: base + "/pair",
		VerificationURLComplete: base + "/pair?code=" + user, ExpiresAt: now.Add(9*time.Minute + 41*time.Second)}
}

// TestPairingScreenQRDecodes: the pairing screen, as the frame draws it,
// holds a QR code that a decoder of its own reads back to exactly the
// verification_url_complete, and the large characters read back to the
// code, for URLs short and long (a longer URL needs a bigger code and the
// narrow quiet zone) on 80×24 and a larger terminal.
func TestPairingScreenQRDecodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		base string
		size screen.Size
	}{
		{"lab 80x24", "https://10.0.2.100:8443", screen.Size{}},
		{"name 80x24", "https://vaultpam-control-plane.dc1.example.com", screen.Size{}},
		{"ipv6 80x24", "https://[2001:db8:1234:5678::100]:8443/tenants/acme", screen.Size{}},
		{"lab 120x33", "https://10.0.2.100:8443", screen.Size{Cols: 120, Rows: 33}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, fake := pairingApp(t, localapi.Status{State: state.AwaitingToken.String(), Mode: localapi.ModeAutonomousRestart}, tc.size)
			c := code("K7Q2-MXW9", tc.base)
			fake.SetCodes(c)
			typeKeys(a, "r")
			typeKeys(a, "P\r")
			s := until(t, a, "Waiting for approval")
			var lines []string
			for _, l := range a.frame().Lines() {
				lines = append(lines, l.Text())
			}
			if len(lines) != a.size.Rows {
				t.Fatalf("%d rows, want %d", len(lines), a.size.Rows)
			}
			qr, err := qrtext.Parse(qrRegion(lines), qrtext.Options{})
			if err != nil {
				t.Fatalf("no QR code on the screen: %v\n%s", err, s)
			}
			if got := decodeQR(t, qr.Image(4)); got != c.VerificationURLComplete {
				t.Errorf("the QR code decodes to %q, want %q", got, c.VerificationURLComplete)
			}
			var big []string
			for _, g := range []string{"K7Q2", "MXW9"} {
				got := readBigOn(lines, g)
				big = append(big, got)
			}
			if big[0] != "K7Q2" || big[1] != "MXW9" {
				t.Errorf("large characters read %q, want K7Q2 and MXW9:\n%s", big, s)
			}
			// The text beside the code, the URL wrapped across lines.
			var flat strings.Builder
			col, width := qrColumns(lines)
			for _, l := range lines {
				if r := []rune(l); len(r) > col+width {
					flat.WriteString(strings.TrimSpace(string(r[col+width:])))
				}
			}
			for _, want := range []string{"Code K7Q2-MXW9, valid for 9:41", c.VerificationURL, "Esc cancel"} {
				if !strings.Contains(s, want) && !strings.Contains(flat.String(), want) {
					t.Errorf("screen lacks %q:\n%s", want, s)
				}
			}
		})
	}
}

// qrRegion cuts the QR code's columns out of a screen: the large
// characters beside it are drawn with the same half blocks. The code's
// top row is quiet zone, all █ (light ink), as wide as the code.
func qrRegion(lines []string) []string {
	col, width := qrColumns(lines)
	if col < 0 {
		return nil
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		r := []rune(l)
		if len(r) > col {
			out[i] = string(r[col:min(len(r), col+width)])
		}
	}
	return out
}

// qrColumns returns the first column and the width of the QR code on a
// screen; -1 when there is none.
func qrColumns(lines []string) (col, width int) {
	col, width = -1, 0
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
	return col, width
}

// readBigOn finds a run of large characters on the screen that reads as
// want; it returns what it read there ("" when nothing does).
func readBigOn(lines []string, want string) string {
	w := bigWidth(want)
	for row := 0; row+bigRows <= len(lines); row++ {
		r0 := []rune(lines[row])
		for col := 0; col+w <= len(r0); col++ {
			var block []string
			for i := range bigRows {
				r := []rune(lines[row+i])
				if col+w > len(r) {
					break
				}
				block = append(block, string(r[col:col+w]))
			}
			if got := readBig(block); got == want {
				return got
			}
		}
	}
	return ""
}

// Every large character reads back as itself and no two look alike.
func TestBigTextReadsBack(t *testing.T) {
	seen := map[string]rune{}
	for r := range bigGlyphs {
		g := strings.Join(bigText(string(r)), "\n")
		if o, dup := seen[g]; dup {
			t.Errorf("%q and %q look the same", r, o)
		}
		seen[g] = r
		if got := readBig(bigText(string(r))); got != string(r) {
			t.Errorf("%q reads back as %q", r, got)
		}
	}
	for _, s := range []string{"K7Q2", "MXW9", "0000", "ZZZ0"} {
		if l := bigText(s); len(l) != bigRows || len([]rune(l[0])) != bigWidth(s) || readBig(l) != s {
			t.Errorf("bigText(%q) = %q", s, l)
		}
	}
}

// TestPairingStates walks a pairing from the health screen: a code,
// expired and replaced, cancelled (DELETE /v1/pair) back to the token
// input, paired again, denied, a new code, approved, Online; the
// screens are golden.
func TestPairingStates(t *testing.T) {
	a, fake := pairingApp(t, localapi.Status{State: state.AwaitingToken.String(), Mode: localapi.ModeAutonomousRestart}, screen.Size{})
	fake.SetCodes(code("K7Q2-MXW9", "https://10.0.2.100:8443"), code("ABCD-EFGH", "https://10.0.2.100:8443"),
		code("ZZZZ-ZZZ0", "https://10.0.2.100:8443"), code("0000-0019", "https://10.0.2.100:8443"))
	typeKeys(a, "r")
	until(t, a, "Type P and press Enter")
	typeKeys(a, "P\r")
	golden(t, "pairing-waiting", until(t, a, "Waiting for approval"))

	fake.Expire()
	golden(t, "pairing-expired", until(t, a, "Code K7Q2-MXW9 expired."))
	fake.Renew()
	s := until(t, a, "Code ABCD-EFGH, valid")
	if !strings.Contains(s, "Code K7Q2-MXW9 expired; this is a new code.") {
		t.Errorf("the new code does not say the old one expired:\n%s", s)
	}

	typeKeys(a, "c")
	until(t, a, "Type P and press Enter")
	for deadline := time.Now().Add(30 * time.Second); fake.Pairings().Stops != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("C did not stop the pairing: %+v", fake.Pairings())
		}
	}

	typeKeys(a, "P\r")
	until(t, a, "Code ZZZZ-ZZZ0, valid")
	fake.Deny()
	golden(t, "pairing-denied", until(t, a, "Denied"))
	if s := a.frame().String(); !strings.Contains(s, "An administrator denied the pairing of code ZZZZ-ZZZ0") {
		t.Errorf("the denial does not say why:\n%s", s)
	}
	typeKeys(a, "p")
	until(t, a, "Code 0000-0019, valid")
	fake.Approve()
	golden(t, "pairing-approved", until(t, a, "is Online"))
	typeKeys(a, "\r")
	until(t, a, "VaultPAM Connector - Health")
}

// TestRecoveryPairs: the needs-recovery page pairs too (P, Enter).
func TestRecoveryPairs(t *testing.T) {
	a, fake := pairingApp(t, localapi.Status{State: state.NeedsRecovery.String(), Mode: localapi.ModeGuidedRecovery,
		ConnectorID: "conn-7f3a", ConnectorName: "dc1-connector-1", Reason: "no identity in /data after restart"}, screen.Size{})
	fake.SetCodes(code("K7Q2-MXW9", "https://10.0.2.100:8443"))
	until(t, a, "Type P and press Enter to pair")
	typeKeys(a, "P\r")
	s := until(t, a, "Waiting for approval")
	if !strings.Contains(s, "Recover this connector with a code") {
		t.Errorf("the pairing does not say it recovers:\n%s", s)
	}
	fake.Approve()
	until(t, a, "dc1-connector-1 is Online (ID conn-7f3a)")
	if got := fake.Submits(); len(got) != 0 {
		t.Errorf("a token was handed over: %d", len(got))
	}
}

// A token that begins with P is still a token: only P alone pairs.
func TestTokenBeginningWithPIsTyped(t *testing.T) {
	a, fake := pairingApp(t, localapi.Status{State: state.AwaitingToken.String(), Mode: localapi.ModeAutonomousRestart}, screen.Size{})
	typeKeys(a, "r")
	until(t, a, "Type P and press Enter")
	const tok = "P0000-00000-00000-0000" // not checked here: only that it is typed, not paired
	typeKeys(a, strings.ReplaceAll(tok, "-", "")+"\r")
	if p := fake.Pairings(); p.Starts != 0 {
		t.Errorf("typing a token that begins with P started pairing: %+v", p)
	}
	if _, err := os.Stat("testdata"); err != nil {
		t.Fatal(err)
	}
}
