// Package vtfont makes the appliance's VGA console fill its screen. On a
// framebuffer console (fbcon) the text size is the framebuffer's size
// divided by the font's cell: 1280×800 with the kernel's default 8×16 font
// is 160×50, and an 80×24 screen sits small in a corner. Choose picks, for
// the framebuffer's size, the largest font that still gives at least 80×24
// characters; Fit loads it on the console's virtual terminal with the
// KDFONTOP ioctl.
//
// The fonts: Terminus 16×32 and VGA 8×16 are built into the appliance's
// kernel (CONFIG_FONT_TER16x32, CONFIG_FONT_8x16) and are set by name; the
// 12×24 font, for 1024×768, is Go Mono Bold as a PSF2 file embedded here
// (made by firstboot/fontgen). No font file or program is needed in the
// image.
package vtfont

import (
	_ "embed"
	"fmt"
)

// MinCols and MinRows are the smallest text size a font may leave: the
// console's screens need 80×24.
const (
	MinCols = 80
	MinRows = 24
)

// Font is a console font: either one built into the kernel, set by its
// kernel name, or a PSF font loaded glyph by glyph.
type Font struct {
	Name          string // "TER16x32", "VGA8x16" (kernel names) or "GoMonoBold12x24"
	Width, Height int    // the character cell in pixels
	Builtin       bool   // the kernel has it: KD_FONT_OP_SET_DEFAULT by Name
	PSF           *PSF   // else the glyphs
}

func (f Font) String() string { return fmt.Sprintf("%s (%dx%d)", f.Name, f.Width, f.Height) }

// Pixels is a framebuffer's visible size.
type Pixels struct{ W, H int }

func (p Pixels) String() string { return fmt.Sprintf("%dx%d", p.W, p.H) }

// Text returns the text size font f gives on p.
func (p Pixels) Text(f Font) (cols, rows int) { return p.W / f.Width, p.H / f.Height }

//go:generate sh -c "cd ../../fontgen && GOWORK=off go run . -o ../internal/vtfont/gomono-bold-12x24.psf"
//go:embed gomono-bold-12x24.psf
var goMono12x24 []byte

// Fonts returns the fonts Choose picks from, largest cell first.
func Fonts() ([]Font, error) {
	mono, err := ParsePSF(goMono12x24)
	if err != nil {
		return nil, fmt.Errorf("the embedded 12x24 font: %w", err)
	}
	return []Font{
		{Name: "TER16x32", Width: 16, Height: 32, Builtin: true},
		{Name: "GoMonoBold12x24", Width: mono.Width, Height: mono.Height, PSF: mono},
		{Name: "VGA8x16", Width: 8, Height: 16, Builtin: true},
	}, nil
}

// Choose returns the first font of fonts (largest first) that gives at
// least MinCols×MinRows on a framebuffer of size p, and false when none
// does (a framebuffer smaller than 640×384: the console is left as it is).
//
//	1024×768  → 12×24, 85×32
//	1280×800  → 16×32, 80×25
//	1920×1080 → 16×32, 120×33
//	800×600   →  8×16, 100×37
func Choose(p Pixels, fonts []Font) (Font, bool) {
	for _, f := range fonts {
		if cols, rows := p.Text(f); cols >= MinCols && rows >= MinRows {
			return f, true
		}
	}
	return Font{}, false
}
