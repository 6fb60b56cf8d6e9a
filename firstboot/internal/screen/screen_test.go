package screen

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadKeys(t *testing.T) {
	in := "a\r\x7f\x1b[A\x1b[B\x1bOC\x1b[D\x1b[Z\x1b[5~\x1b[6~\x15\t"
	var got []Key
	for k := range ReadKeys(strings.NewReader(in)) {
		got = append(got, k)
	}
	want := []Key{{Kind: KeyRune, Rune: 'a'}, {Kind: KeyEnter}, {Kind: KeyBackspace}, {Kind: KeyUp}, {Kind: KeyDown},
		{Kind: KeyRight}, {Kind: KeyLeft}, {Kind: KeyBackTab}, {Kind: KeyPgUp}, {Kind: KeyPgDown}, {Kind: KeyCtrlU}, {Kind: KeyTab}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadKeys (-want +got):\n%s", diff)
	}
}

// A lone ESC (the Esc key) is told apart from a sequence by the pause after it.
func TestLoneEscape(t *testing.T) {
	r, w := io.Pipe()
	keys := ReadKeys(r)
	w.Write([]byte{0x1b})
	if k := <-keys; k.Kind != KeyEsc {
		t.Errorf("lone ESC = %v, want KeyEsc", k)
	}
	w.Write([]byte("x"))
	if k := <-keys; k.Kind != KeyRune || k.Rune != 'x' {
		t.Errorf("after ESC: %v, want x", k)
	}
	w.Close()
}

func TestRendererRedrawsOnlyChangedRows(t *testing.T) {
	var buf bytes.Buffer
	r := NewRenderer(&buf)
	var f Frame
	f.Text("one")
	f.Add(Span{Text: "two", Attr: Bold | Reverse})
	r.Draw(&f)
	first := buf.String()
	if !strings.Contains(first, "\x1b[2J") || !strings.Contains(first, "\x1b[0;1;7mtwo") {
		t.Errorf("first draw %q lacks clear or attributes", first)
	}
	buf.Reset()
	var g Frame
	g.Text("one")
	g.Text("three")
	r.Draw(&g)
	if s := buf.String(); strings.Contains(s, "one") || !strings.Contains(s, "\x1b[2;1Hthree") {
		t.Errorf("second draw %q: want only row 2 redrawn", s)
	}
}

func TestFrameClipsAndPads(t *testing.T) {
	var f Frame
	f.Text(strings.Repeat("x", 100))
	lines := strings.Split(f.String(), "\n")
	if len(lines[0]) != Cols || len(lines) != Rows+1 {
		t.Errorf("frame: first line %d chars, %d lines; want %d and %d", len(lines[0]), len(lines)-1, Cols, Rows)
	}
}

func TestFitNeverBelowMinimum(t *testing.T) {
	for _, tc := range []struct{ in, want Size }{
		{Size{}, Size{80, 24}},         // unknown (a serial line)
		{Size{70, 20}, Size{80, 24}},   // smaller: drawn at 80×24
		{Size{80, 25}, Size{80, 25}},   // the VGA text console
		{Size{85, 32}, Size{85, 32}},   // 1024×768 with a 12×24 font
		{Size{120, 33}, Size{120, 33}}, // 1920×1080 with 16×32
		{Size{128, 20}, Size{128, 24}}, // each direction on its own
	} {
		if got := Fit(tc.in); got != tc.want {
			t.Errorf("Fit(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// A frame of another size is drawn in full, and the cursor is parked in
// its bottom-right corner.
func TestRendererRedrawsOnNewSize(t *testing.T) {
	var buf bytes.Buffer
	r := NewRenderer(&buf)
	f := NewFrame(Size{80, 24})
	f.Text("one")
	r.Draw(f)
	buf.Reset()
	g := NewFrame(Size{120, 33})
	g.Text("one")
	r.Draw(g)
	s := buf.String()
	if !strings.Contains(s, "\x1b[2J") || !strings.Contains(s, "\x1b[1;1Hone") || !strings.HasSuffix(s, "\x1b[33;120H") {
		t.Errorf("draw at a new size = %q, want a cleared screen, every row, the cursor at 33;120", s)
	}
	if n := len(g.Lines()); n != 33 {
		t.Errorf("a 120x33 frame has %d rows", n)
	}
}
