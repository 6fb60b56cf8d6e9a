package vtfont

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// PSF is a PC Screen Font: a bitmap per glyph, each row padded to whole
// bytes, most significant bit leftmost. Version 1 (8 pixels wide, 256 or
// 512 glyphs) and version 2 are read, gzipped or not, as Debian ships them
// in /usr/share/consolefonts. A Unicode table, if any, is ignored.
type PSF struct {
	Width, Height int
	Count         int    // glyphs
	Glyphs        []byte // Count × Height × RowBytes()
}

// RowBytes is the size of one glyph row.
func (p *PSF) RowBytes() int { return (p.Width + 7) / 8 }

// Glyph returns glyph i's rows.
func (p *PSF) Glyph(i int) []byte {
	n := p.Height * p.RowBytes()
	return p.Glyphs[i*n : (i+1)*n]
}

// Pixel reports whether pixel (x, y) of glyph i is set.
func (p *PSF) Pixel(i, x, y int) bool {
	return p.Glyph(i)[y*p.RowBytes()+x/8]&(0x80>>(x%8)) != 0
}

const (
	psf1Magic   = 0x0436     // little-endian 36 04
	psf2Magic   = 0x864ab572 // little-endian 72 b5 4a 86
	psf1Mode512 = 0x01
)

// ParsePSF reads a PSF font (gzipped or not).
func ParsePSF(b []byte) (*PSF, error) {
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("reading gzipped PSF: %w", err)
		}
		if b, err = io.ReadAll(io.LimitReader(zr, 1<<20)); err != nil {
			return nil, fmt.Errorf("reading gzipped PSF: %w", err)
		}
	}
	var p PSF
	var data []byte
	switch {
	case len(b) >= 32 && binary.LittleEndian.Uint32(b) == psf2Magic:
		hdr := make([]uint32, 8)
		binary.Read(bytes.NewReader(b[:32]), binary.LittleEndian, hdr)
		size, count, charSize, height, width := hdr[2], hdr[4], hdr[5], hdr[6], hdr[7]
		if width == 0 || width > 32 || height == 0 || height > 32 || count == 0 || count > 512 {
			return nil, fmt.Errorf("PSF2 font of %d glyphs of %dx%d: the console takes at most 512 glyphs of at most 32x32", count, width, height)
		}
		p = PSF{Width: int(width), Height: int(height), Count: int(count)}
		if charSize != uint32(p.Height*p.RowBytes()) || size < 32 || uint64(size)+uint64(count)*uint64(charSize) > uint64(len(b)) {
			return nil, errors.New("PSF2 font is truncated or its header does not match its glyphs")
		}
		data = b[size:]
	case len(b) >= 4 && binary.LittleEndian.Uint16(b) == psf1Magic:
		p = PSF{Width: 8, Height: int(b[3]), Count: 256}
		if b[2]&psf1Mode512 != 0 {
			p.Count = 512
		}
		if p.Height == 0 || p.Height > 32 || 4+p.Count*p.Height > len(b) {
			return nil, errors.New("PSF1 font is truncated or its header does not match its glyphs")
		}
		data = b[4:]
	default:
		return nil, errors.New("not a PSF font (no PSF1 or PSF2 magic)")
	}
	p.Glyphs = append([]byte(nil), data[:p.Count*p.Height*p.RowBytes()]...)
	return &p, nil
}

// kernelData lays the glyphs out as KDFONTOP's KD_FONT_OP_SET takes them:
// every glyph 32 rows high, the rows below Height blank. The kernel takes
// 256 or 512 glyphs: fewer are padded with blank ones.
func (p *PSF) kernelData() (data []byte, count int) {
	const pitch = 32
	count = 256
	if p.Count > 256 {
		count = 512
	}
	rb := p.RowBytes()
	data = make([]byte, count*pitch*rb)
	for i := range min(p.Count, count) {
		copy(data[i*pitch*rb:], p.Glyph(i))
	}
	return data, count
}
