package vtfont

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

func fonts(t *testing.T) []Font {
	t.Helper()
	fs, err := Fonts()
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// The framebuffer sizes vSphere hands out, and a few more: the font is the
// largest that still gives 80×24.
func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		px         Pixels
		font       string
		cols, rows int
	}{
		{Pixels{1024, 768}, "GoMonoBold12x24", 85, 32},
		{Pixels{1280, 800}, "TER16x32", 80, 25},
		{Pixels{1920, 1080}, "TER16x32", 120, 33},
		{Pixels{1280, 720}, "GoMonoBold12x24", 106, 30}, // 16×32 would give 22 rows
		{Pixels{1280, 1024}, "TER16x32", 80, 32},
		{Pixels{800, 600}, "VGA8x16", 100, 37},
		{Pixels{640, 480}, "VGA8x16", 80, 30},
		{Pixels{2560, 1600}, "TER16x32", 160, 50},
	} {
		f, ok := Choose(tc.px, fonts(t))
		cols, rows := tc.px.Text(f)
		if !ok || f.Name != tc.font || cols != tc.cols || rows != tc.rows {
			t.Errorf("Choose(%s) = %s, %dx%d (%v); want %s, %dx%d", tc.px, f, cols, rows, ok, tc.font, tc.cols, tc.rows)
		}
	}
	if f, ok := Choose(Pixels{600, 400}, fonts(t)); ok {
		t.Errorf("Choose(600x400) = %s; want none (no font gives 80x24)", f)
	}
}

// checkFont checks a parsed font: the size, ASCII letters and digits drawn
// inside their cell, the space blank.
func checkFont(t *testing.T, name string, p *PSF, w, h int) {
	t.Helper()
	if p.Width != w || p.Height != h || (p.Count != 256 && p.Count != 512) {
		t.Fatalf("%s: %dx%d, %d glyphs; want %dx%d, 256 or 512", name, p.Width, p.Height, p.Count, w, h)
	}
	set := func(c int) int {
		n := 0
		for y := range p.Height {
			for x := range p.Width {
				if p.Pixel(c, x, y) {
					n++
				}
			}
		}
		return n
	}
	for _, c := range "AZaz09#[]" {
		if set(int(c)) == 0 {
			t.Errorf("%s: glyph %q is blank", name, c)
		}
	}
	if set(' ') != 0 {
		t.Errorf("%s: the space has pixels", name)
	}
	if set('I') == set('M') {
		t.Errorf("%s: I and M look alike (%d pixels each)", name, set('I'))
	}
}

// The 12×24 font the console embeds is a real PSF2 file, as fontgen wrote
// it; the kernel gets its glyphs at a 32-row pitch.
func TestEmbeddedFont(t *testing.T) {
	b, err := os.ReadFile("gomono-bold-12x24.psf")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePSF(b)
	if err != nil {
		t.Fatalf("ParsePSF(gomono-bold-12x24.psf): %v", err)
	}
	checkFont(t, "gomono-bold-12x24.psf", p, 12, 24)
	data, count := p.kernelData()
	if count != 256 || len(data) != 256*32*2 {
		t.Fatalf("kernelData: %d glyphs, %d bytes; want 256 and %d", count, len(data), 256*32*2)
	}
	a := data['A'*32*2:]
	for y := range 24 {
		if a[2*y] != p.Glyph('A')[2*y] || a[2*y+1] != p.Glyph('A')[2*y+1] {
			t.Fatalf("kernelData: row %d of A differs from the font", y)
		}
	}
	for y := 24; y < 32; y++ {
		if a[2*y] != 0 || a[2*y+1] != 0 {
			t.Errorf("kernelData: row %d of A (below the glyph) is not blank", y)
		}
	}
}

// The loader reads Debian's console fonts too (package console-setup-linux):
// PSF2, gzipped, with a Unicode table; Lat15-Terminus24x12 is the Terminus
// font of the same cell as ours. VAULTPAM_CONSOLEFONTS names another
// directory holding them (the package unpacked with dpkg-deb -x).
func TestDebianConsoleFonts(t *testing.T) {
	dir := os.Getenv("VAULTPAM_CONSOLEFONTS")
	if dir == "" {
		dir = "/usr/share/consolefonts"
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*Terminus*.psf.gz"))
	if len(paths) == 0 {
		t.Skipf("no Terminus fonts in %s (Debian package console-setup-linux); the embedded font is tested above", dir)
	}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParsePSF(b)
		if err != nil {
			t.Errorf("ParsePSF(%s): %v", path, err)
			continue
		}
		if filepath.Base(path) == "Lat15-Terminus24x12.psf.gz" {
			checkFont(t, path, p, 12, 24)
		}
	}
}

func TestParsePSFRejects(t *testing.T) {
	b, _ := os.ReadFile("gomono-bold-12x24.psf")
	for name, in := range map[string][]byte{
		"empty":     nil,
		"not a PSF": []byte("hello, this is no font at all, really not"),
		"truncated": b[:1000],
		"PSF1 cut":  {0x36, 0x04, 0x00, 0x10, 0xff},
	} {
		if _, err := ParsePSF(in); err == nil {
			t.Errorf("ParsePSF(%s) succeeded, want an error", name)
		}
	}
}

// A version 1 font (8 pixels wide) is read too.
func TestParsePSF1(t *testing.T) {
	b := []byte{0x36, 0x04, 0x00, 16}
	glyphs := make([]byte, 256*16)
	glyphs['|'*16+3] = 0x18
	p, err := ParsePSF(append(b, glyphs...))
	if err != nil || p.Width != 8 || p.Height != 16 || p.Count != 256 || !p.Pixel('|', 3, 3) || p.Pixel('|', 2, 3) {
		t.Fatalf("ParsePSF(PSF1) = %+v, %v", p, err)
	}
}

// KDFONTOP takes struct console_font_op: five unsigned ints and a pointer
// at offset 24 on 64-bit Linux (32 bytes).
func TestConsoleFontOpLayout(t *testing.T) {
	var op consoleFontOp
	if unsafe.Sizeof(uintptr(0)) == 8 && (unsafe.Sizeof(op) != 32 || unsafe.Offsetof(op.data) != 24) {
		t.Errorf("console_font_op: size %d, data at %d; want 32 and 24", unsafe.Sizeof(op), unsafe.Offsetof(op.data))
	}
}

// A pseudo-terminal or a serial line is no virtual terminal: Fit leaves it
// alone with ErrNotVT.
func TestFitOnlyOnAVirtualTerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no /dev/ptmx: %v", err)
	}
	defer ptmx.Close()
	if _, err := Fit(ptmx); !errors.Is(err, ErrNotVT) {
		t.Errorf("Fit(pseudo-terminal) = %v, want ErrNotVT", err)
	}
	f, _ := os.Open("gomono-bold-12x24.psf")
	defer f.Close()
	if _, err := Fit(f); !errors.Is(err, ErrNotVT) {
		t.Errorf("Fit(regular file) = %v, want ErrNotVT", err)
	}
}

func TestHasFramebuffer(t *testing.T) {
	root := t.TempDir()
	if HasFramebuffer(root) {
		t.Errorf("HasFramebuffer(empty root) = true")
	}
	os.MkdirAll(filepath.Join(root, "sys/class/graphics/fb0"), 0o755)
	if !HasFramebuffer(root) {
		t.Errorf("HasFramebuffer(root with fb0) = false")
	}
}
