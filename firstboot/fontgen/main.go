// Command fontgen writes the 12×24 console font the VGA console uses on a
// 1024×768 framebuffer (firstboot/internal/vtfont): Go Mono Bold, from the
// Go font family in golang.org/x/image, rasterised to a bitmap and stored
// as a PSF2 file of 256 glyphs, ASCII at its own code points, the rest
// blank (the console prints ASCII only).
//
// It lives in a module of its own so the appliance's runtime module does
// not depend on the font rasteriser. Run it through go generate in
// firstboot/internal/vtfont; the output is committed.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// The cell: Go Mono's advance is 0.6 em, so a 20 px em gives 12 px; its
// ascent and descent (19 + 5 px at that size) fill 24 rows.
const (
	width, height = 12, 24
	emPixels      = 20
	baseline      = 19
	glyphs        = 256
	// threshold is the coverage (of 255) from which a pixel is set.
	threshold = 110
)

func main() {
	out := flag.String("o", "", "write the PSF2 font to this file")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "fontgen: error: no output file\nhint: fontgen -o FILE.psf")
		os.Exit(2)
	}
	b, err := render()
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fontgen: error: %v\n", err)
		os.Exit(1)
	}
}

// render returns the PSF2 file.
func render() ([]byte, error) {
	f, err := opentype.Parse(gomonobold.TTF)
	if err != nil {
		return nil, fmt.Errorf("parsing Go Mono Bold: %w", err)
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: emPixels, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, fmt.Errorf("sizing Go Mono Bold: %w", err)
	}
	defer face.Close()
	if adv, ok := face.GlyphAdvance('M'); !ok || adv.Round() != width {
		return nil, fmt.Errorf("Go Mono Bold at %d px advances %v, want %d px", emPixels, adv, width)
	}
	const rowBytes = (width + 7) / 8
	var buf bytes.Buffer
	// PSF2 header: magic, version, header size, flags (no Unicode table),
	// glyph count, bytes per glyph, height, width.
	for _, v := range []uint32{0x864ab572, 0, 32, 0, glyphs, rowBytes * height, height, width} {
		binary.Write(&buf, binary.LittleEndian, v)
	}
	for c := range glyphs {
		cell := image.NewAlpha(image.Rect(0, 0, width, height))
		if c > 0x20 && c < 0x7f {
			d := font.Drawer{Dst: cell, Src: image.Opaque, Face: face, Dot: fixed.P(0, baseline)}
			d.DrawString(string(rune(c)))
		}
		for y := range height {
			var row [rowBytes]byte
			for x := range width {
				if cell.AlphaAt(x, y).A >= threshold {
					row[x/8] |= 0x80 >> (x % 8)
				}
			}
			buf.Write(row[:])
		}
	}
	return buf.Bytes(), nil
}
