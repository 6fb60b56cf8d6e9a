// Package qrtext draws QR codes with text, for the VM console, the serial
// console and terminals: two modules per character cell, one above the
// other, drawn with the half-block characters ▀ (U+2580), ▄ (U+2584) and █
// (U+2588) and the space. The Linux console's fonts have them (the CP437
// glyphs 0xDF, 0xDC and 0xDB, which the kernel's default Unicode map
// names), and so do terminal fonts.
//
// On a terminal the characters' ink is the foreground colour. The default
// (Options.LightBackground false) is for light text on a dark background,
// as the Linux console and most terminals show it: the ink draws the
// code's light modules and its quiet zone, the background shows through as
// the dark modules, so what people see (and cameras scan) is an ordinary
// dark-on-light QR code in a light frame. With LightBackground the ink
// draws the dark modules instead (paper, light terminal themes).
//
// Parse reads the text back into modules (for tests that decode what a
// screen shows); the encoder is github.com/skip2/go-qrcode.
package qrtext

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// Level is the error correction level.
type Level int

// Error correction levels. A screen is not damaged like a printed label,
// so Low (about 7% of the code may be lost) gives the smallest code.
const (
	Low    Level = iota // ~7%
	Medium              // ~15%
)

// Code is a QR code's modules without a quiet zone. The zero value is
// not usable; use Encode or Parse.
type Code struct {
	size int
	dark []bool // row-major, size×size
}

// Encode encodes text (a URL) at level.
func Encode(text string, level Level) (*Code, error) {
	l := qrcode.Low
	if level == Medium {
		l = qrcode.Medium
	}
	q, err := qrcode.New(text, l)
	if err != nil {
		return nil, fmt.Errorf("encoding a QR code of %d bytes: %w", len(text), err)
	}
	q.DisableBorder = true
	bm := q.Bitmap()
	c := &Code{size: len(bm), dark: make([]bool, len(bm)*len(bm))}
	for y, row := range bm {
		if len(row) != c.size {
			return nil, errors.New("QR encoder returned a bitmap that is not square")
		}
		copy(c.dark[y*c.size:], row)
	}
	return c, nil
}

// Size is the number of modules on a side (21, 25, 29, …).
func (c *Code) Size() int { return c.size }

// Dark reports whether the module at column x, row y is dark; outside the
// code (the quiet zone) everything is light.
func (c *Code) Dark(x, y int) bool {
	return x >= 0 && y >= 0 && x < c.size && y < c.size && c.dark[y*c.size+x]
}

// Equal reports whether c and d have the same modules.
func (c *Code) Equal(d *Code) bool {
	if c.size != d.size {
		return false
	}
	for i := range c.dark {
		if c.dark[i] != d.dark[i] {
			return false
		}
	}
	return true
}

// Options say how to draw.
type Options struct {
	// Quiet is the light margin around the code, in modules; 0 means
	// DefaultQuiet. The QR standard asks for 4; 2 is enough for phone
	// cameras when a screen is short of rows.
	Quiet int
	// LightBackground draws the dark modules with ink, for dark text on a
	// light background; the default draws the light ones (see the package
	// comment).
	LightBackground bool
}

// DefaultQuiet is the quiet zone the QR standard asks for.
const DefaultQuiet = 4

// The characters: what the upper and the lower half of a cell show.
const (
	upper = '▀'
	lower = '▄'
	full  = '█'
	empty = ' '
)

// Lines draws c as lines of text, all of the same length (Size+2·Quiet
// characters); there are (Size+2·Quiet+1)/2 of them. With an odd number
// of module rows the last line's lower half is quiet zone too.
func (c *Code) Lines(o Options) []string {
	q := o.Quiet
	if q <= 0 {
		q = DefaultQuiet
	}
	w := c.size + 2*q
	h := w
	if h%2 == 1 {
		h++ // one more row of quiet zone at the bottom
	}
	ink := func(x, y int) bool {
		d := c.Dark(x-q, y-q)
		if o.LightBackground {
			return d
		}
		return !d
	}
	lines := make([]string, 0, h/2)
	var b strings.Builder
	for y := 0; y < h; y += 2 {
		b.Reset()
		for x := range w {
			switch top, bottom := ink(x, y), ink(x, y+1); {
			case top && bottom:
				b.WriteRune(full)
			case top:
				b.WriteRune(upper)
			case bottom:
				b.WriteRune(lower)
			default:
				b.WriteRune(empty)
			}
		}
		lines = append(lines, b.String())
	}
	return lines
}

// String is Lines joined with newlines (and one at the end).
func (c *Code) String(o Options) string {
	return strings.Join(c.Lines(o), "\n") + "\n"
}

// Parse finds a QR code drawn by Lines in text (a screen's lines; other
// text around it is ignored as long as it has no half-block characters)
// and returns its modules. o.LightBackground must be what it was drawn
// with; o.Quiet does not matter.
func Parse(screen []string, o Options) (*Code, error) {
	// The ink, two pixels per character cell.
	type pt struct{ x, y int }
	ink := map[pt]bool{}
	minX, minY, maxX, maxY := -1, -1, -1, -1
	for row, line := range screen {
		for col, r := range []rune(line) {
			var top, bottom bool
			switch r {
			case full:
				top, bottom = true, true
			case upper:
				top = true
			case lower:
				bottom = true
			default:
				continue
			}
			for i, on := range []bool{top, bottom} {
				if !on {
					continue
				}
				p := pt{col, 2*row + i}
				ink[p] = true
				if minX < 0 || p.x < minX {
					minX = p.x
				}
				if minY < 0 || p.y < minY {
					minY = p.y
				}
				maxX, maxY = max(maxX, p.x), max(maxY, p.y)
			}
		}
	}
	if len(ink) == 0 {
		return nil, errors.New("no half-block characters (▀ ▄ █) on the screen: no QR code")
	}
	dark := func(x, y int) bool {
		if o.LightBackground {
			return ink[pt{x, y}]
		}
		// Inside the ink's frame, what has no ink is dark.
		return x >= minX && x <= maxX && y >= minY && y <= maxY && !ink[pt{x, y}]
	}
	// The code is the bounding box of the dark modules: finder patterns
	// sit in three corners.
	x0, y0, x1, y1 := -1, -1, -1, -1
	for y := minY; y <= maxY; y++ {
		for x := minX; x <= maxX; x++ {
			if !dark(x, y) {
				continue
			}
			if x0 < 0 || x < x0 {
				x0 = x
			}
			if y0 < 0 || y < y0 {
				y0 = y
			}
			x1, y1 = max(x1, x), max(y1, y)
		}
	}
	if x0 < 0 {
		return nil, errors.New("the half-block characters hold no dark module: wrong LightBackground?")
	}
	size := x1 - x0 + 1
	if y1-y0+1 != size || size < 21 || (size-21)%4 != 0 {
		return nil, fmt.Errorf("the dark modules span %d×%d, not a QR code's 21+4k square", size, y1-y0+1)
	}
	c := &Code{size: size, dark: make([]bool, size*size)}
	for y := range size {
		for x := range size {
			c.dark[y*size+x] = dark(x0+x, y0+y)
		}
	}
	return c, nil
}

// Image draws c as a picture for QR decoders: black dark modules on white,
// scale pixels per module, with the standard quiet zone of 4 modules.
func (c *Code) Image(scale int) image.Image {
	if scale < 1 {
		scale = 1
	}
	side := (c.size + 2*DefaultQuiet) * scale
	img := image.NewGray(image.Rect(0, 0, side, side))
	for y := range side {
		for x := range side {
			v := uint8(255)
			if c.Dark(x/scale-DefaultQuiet, y/scale-DefaultQuiet) {
				v = 0
			}
			img.SetGray(x, y, color.Gray{Y: v})
		}
	}
	return img
}
