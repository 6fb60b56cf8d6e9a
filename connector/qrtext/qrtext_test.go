package qrtext

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var urls = []string{
	"https://127.0.0.1:8443/pair?code=K7Q2-MXW9",
	"https://10.0.2.100:8443/pair?code=ABCD-EFGH",
	"https://vaultpam-control-plane.dc1.example.com/pair?code=0000-0019",
	"https://[2001:db8::100]:8443/pair?code=ZZZZ-ZZZ0",
}

// decode reads a QR code out of a picture with a decoder of its own
// (gozxing, a port of ZXing): not our Parse, not the encoder.
func decode(t *testing.T, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	return res.GetText()
}

// screenshot rasterises lines as a terminal shows them: each character
// cell 4 pixels wide and 8 high, its upper and lower halves in the ink
// colour where the glyph has ink, the background elsewhere, and a margin
// of background around the text (the rest of the screen).
func screenshot(lines []string, ink, bg color.Gray) image.Image {
	const cw, ch, margin = 4, 8, 24
	w := 0
	for _, l := range lines {
		w = max(w, utf8.RuneCountInString(l))
	}
	img := image.NewGray(image.Rect(0, 0, w*cw+2*margin, len(lines)*ch+2*margin))
	for i := range img.Pix {
		img.Pix[i] = bg.Y
	}
	for row, l := range lines {
		for col, r := range []rune(l) {
			top := r == '█' || r == '▀'
			bottom := r == '█' || r == '▄'
			for y := range ch {
				if (y < ch/2 && top) || (y >= ch/2 && bottom) {
					for x := range cw {
						img.SetGray(margin+col*cw+x, margin+row*ch+y, ink)
					}
				}
			}
		}
	}
	return img
}

var (
	white = color.Gray{Y: 0xe0} // the Linux console's light grey
	black = color.Gray{Y: 0}
)

// What the screen shows decodes back to the URL: light text on a dark
// background and dark on light, with the standard and a narrow quiet
// zone; and the text parses back to the encoder's own modules.
func TestRenderedTextDecodesToTheURL(t *testing.T) {
	for _, u := range urls {
		c, err := Encode(u, Low)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range []Options{{}, {Quiet: 2}, {LightBackground: true}, {Quiet: 2, LightBackground: true}} {
			name := fmt.Sprintf("%s quiet=%d light=%v", u, o.Quiet, o.LightBackground)
			lines := c.Lines(o)
			q := o.Quiet
			if q == 0 {
				q = DefaultQuiet
			}
			if want := (c.Size() + 2*q + 1) / 2; len(lines) != want {
				t.Errorf("%s: %d lines, want %d", name, len(lines), want)
			}
			for _, l := range lines {
				if n := utf8.RuneCountInString(l); n != c.Size()+2*q || strings.Trim(l, " ▀▄█") != "" {
					t.Fatalf("%s: line %q: %d characters, want %d of ' ▀▄█'", name, l, n, c.Size()+2*q)
				}
			}
			ink, bg := white, black
			if o.LightBackground {
				ink, bg = black, white
			}
			if got := decode(t, screenshot(lines, ink, bg)); got != u {
				t.Errorf("%s: the screen decodes to %q", name, got)
			}
			back, err := Parse(lines, o)
			if err != nil {
				t.Fatalf("%s: Parse: %v", name, err)
			}
			if !back.Equal(c) {
				t.Errorf("%s: Parse(Lines) differs from the encoder's modules", name)
			}
			if got := decode(t, back.Image(4)); got != u {
				t.Errorf("%s: Parse's modules decode to %q", name, got)
			}
		}
	}
}

// On a screen the code has text around it; Parse finds it there.
func TestParseAmidText(t *testing.T) {
	u := urls[1]
	c, _ := Encode(u, Low)
	screen := []string{"  VaultPAM connector — Pairing", "", "  Code  ABCD-EFGH   (valid until 14:05 UTC)", ""}
	for _, l := range c.Lines(Options{Quiet: 2}) {
		screen = append(screen, "    "+l+"   ")
	}
	screen = append(screen, "", "  Open https://10.0.2.100:8443/pair and enter the code.", "  [P] pair  [T] type a token instead")
	back, err := Parse(screen, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(c) || decode(t, back.Image(3)) != u {
		t.Error("the code found amid text is not the one drawn")
	}
	if _, err := Parse([]string{"no code here"}, Options{}); err == nil {
		t.Error("Parse of plain text succeeded")
	}
}

// The golden file shows what a pairing URL looks like (go test -update).
func TestGolden(t *testing.T) {
	c, err := Encode("https://10.0.2.100:8443/pair?code=ABCD-EFGH", Low)
	if err != nil {
		t.Fatal(err)
	}
	got := c.String(Options{})
	path := filepath.Join("testdata", "pair-url.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("rendering differs from %s:\n%s", path, got)
	}
}

func TestEncodeTooLong(t *testing.T) {
	if _, err := Encode(strings.Repeat("x", 5000), Low); err == nil {
		t.Error("5000 bytes encoded")
	}
}
