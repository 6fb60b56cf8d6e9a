package vmdk

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
)

// parsed is what the test parser learns from walking a stream.
type parsed struct {
	header     Header
	footer     Header
	descriptor string
	grains     map[uint64][]byte // LBA → decompressed grain
	gd         []uint32
	gdSector   uint64
}

// parseStream walks every marker of a streamOptimized VMDK and checks the
// structure: grain LBAs strictly ascending, each grain table listing exactly
// the grains before it, the grain directory pointing at those tables, a
// footer matching the header, and the end-of-stream marker as the last
// sector with nothing after it.
func parseStream(b []byte) (*parsed, error) {
	p := &parsed{grains: map[uint64][]byte{}}
	if len(b)%SectorSize != 0 {
		return nil, fmt.Errorf("file size %d is not a multiple of %d", len(b), SectorSize)
	}
	if err := p.header.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if p.header.GDOffset != gdAtEnd {
		return nil, fmt.Errorf("header gdOffset %#x, want GD_AT_END", p.header.GDOffset)
	}
	h := p.header
	desc := b[h.DescriptorOffset*SectorSize : (h.DescriptorOffset+h.DescriptorSize)*SectorSize]
	p.descriptor = string(bytes.TrimRight(desc, "\x00"))
	le := binary.LittleEndian
	grainAt := map[uint64]uint64{} // file sector → LBA
	var lastLBA int64 = -1
	var gts = map[uint64][]uint32{} // file sector of table → entries
	off := h.OverHead * SectorSize
	for {
		if off+SectorSize > uint64(len(b)) {
			return nil, fmt.Errorf("stream ends at byte %d without an end-of-stream marker", off)
		}
		val := le.Uint64(b[off:])
		size := le.Uint32(b[off+8:])
		if size != 0 { // grain marker
			if int64(val) <= lastLBA {
				return nil, fmt.Errorf("grain LBA %d at byte %d after LBA %d: not ascending", val, off, lastLBA)
			}
			if val%GrainSectors != 0 || val >= h.Capacity {
				return nil, fmt.Errorf("grain LBA %d: not grain aligned or beyond capacity %d", val, h.Capacity)
			}
			lastLBA = int64(val)
			end := off + grainMarkerSize + uint64(size)
			if end > uint64(len(b)) {
				return nil, fmt.Errorf("grain at byte %d runs past the end", off)
			}
			zr, err := zlib.NewReader(bytes.NewReader(b[off+grainMarkerSize : end]))
			if err != nil {
				return nil, fmt.Errorf("grain LBA %d: %w", val, err)
			}
			data, err := io.ReadAll(zr)
			if err != nil {
				return nil, fmt.Errorf("grain LBA %d: %w", val, err)
			}
			if len(data) != GrainSize {
				return nil, fmt.Errorf("grain LBA %d: %d bytes, want %d", val, len(data), GrainSize)
			}
			p.grains[val] = data
			grainAt[off/SectorSize] = val
			off = (end + SectorSize - 1) / SectorSize * SectorSize
			continue
		}
		typ := le.Uint32(b[off+12:])
		body := off + SectorSize
		switch typ {
		case MarkerEOS:
			if val != 0 {
				return nil, fmt.Errorf("end-of-stream marker with value %d", val)
			}
			if body != uint64(len(b)) {
				return nil, fmt.Errorf("%d bytes after the end-of-stream marker", uint64(len(b))-body)
			}
			if p.footer.Capacity == 0 {
				return nil, fmt.Errorf("no footer before the end-of-stream marker")
			}
			return p, p.checkTables(b, gts, grainAt)
		case MarkerGT:
			if val != GTEntries*4/SectorSize {
				return nil, fmt.Errorf("grain table marker announces %d sectors", val)
			}
			t := make([]uint32, GTEntries)
			for i := range t {
				t[i] = le.Uint32(b[body+uint64(4*i):])
			}
			gts[body/SectorSize] = t
		case MarkerGD:
			n := (h.Capacity + GrainSectors*GTEntries - 1) / (GrainSectors * GTEntries)
			if val != (n*4+SectorSize-1)/SectorSize {
				return nil, fmt.Errorf("grain directory marker announces %d sectors for %d tables", val, n)
			}
			p.gd = make([]uint32, n)
			for i := range p.gd {
				p.gd[i] = le.Uint32(b[body+uint64(4*i):])
			}
			p.gdSector = body / SectorSize
		case MarkerFooter:
			if val != 1 {
				return nil, fmt.Errorf("footer marker announces %d sectors", val)
			}
			var f Header
			if err := f.UnmarshalBinary(b[body:]); err != nil {
				return nil, fmt.Errorf("footer: %w", err)
			}
			if p.gd == nil || f.GDOffset != p.gdSector {
				return nil, fmt.Errorf("footer gdOffset %d, grain directory is at sector %d", f.GDOffset, p.gdSector)
			}
			want := h
			want.GDOffset = f.GDOffset
			if f != want {
				return nil, fmt.Errorf("footer %+v differs from header %+v", f, want)
			}
			p.footer = f
			if uint64(len(b)) != body+2*SectorSize {
				return nil, fmt.Errorf("footer is not followed by exactly the end-of-stream sector")
			}
		default:
			return nil, fmt.Errorf("unknown marker type %d at byte %d", typ, off)
		}
		off = body + val*SectorSize
	}
}

// checkTables checks that the grain directory and tables describe exactly
// the grains found in the stream.
func (p *parsed) checkTables(b []byte, gts map[uint64][]uint32, grainAt map[uint64]uint64) error {
	seen := 0
	for i, sec := range p.gd {
		if sec == 0 {
			continue
		}
		t, ok := gts[uint64(sec)]
		if !ok {
			return fmt.Errorf("grain directory entry %d points at sector %d, not a grain table", i, sec)
		}
		for j, g := range t {
			if g == 0 {
				continue
			}
			lba, ok := grainAt[uint64(g)]
			want := uint64(i*GTEntries+j) * GrainSectors
			if !ok || lba != want {
				return fmt.Errorf("grain table %d entry %d points at sector %d (LBA %d, found %v), want LBA %d", i, j, g, lba, ok, want)
			}
			seen++
		}
	}
	if seen != len(p.grains) || len(gts) > len(p.gd) {
		return fmt.Errorf("tables reference %d grains, stream holds %d", seen, len(p.grains))
	}
	return nil
}
