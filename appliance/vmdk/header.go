// Package vmdk writes VMware streamOptimized sparse disks (VMDK version 3)
// from a raw disk image, as vSphere expects them inside an OVA: an embedded
// descriptor, zlib-compressed 64 KiB grains each behind a grain marker, grain
// tables and the grain directory behind their markers, a footer, and the
// end-of-stream marker as the last sector of the file with nothing after it.
//
// The writer streams: it reads the raw input once, in order, compresses
// grains on all cores and writes them in order, holding only a bounded window
// of grains in memory. All-zero grains are not stored.
package vmdk

import (
	"encoding/binary"
	"fmt"
)

// Format constants from VMware's "Virtual Disk Format 5.0" specification.
const (
	SectorSize = 512
	// GrainSectors is the grain size in sectors (64 KiB grains).
	GrainSectors = 128
	GrainSize    = GrainSectors * SectorSize
	// GTEntries is the number of entries in one grain table; one table
	// covers GTEntries*GrainSize = 32 MiB of the disk.
	GTEntries = 512

	magic = 0x564d444b // "KDMV" little-endian

	flagValidNewlineTest = 1 << 0
	flagCompressed       = 1 << 16
	flagMarkers          = 1 << 17

	compressDeflate = 1

	// gdAtEnd in the header's gdOffset means "read the footer".
	gdAtEnd = ^uint64(0)
)

// Marker types of a metadata marker (a grain marker has no type field).
const (
	MarkerEOS    = 0
	MarkerGT     = 1
	MarkerGD     = 2
	MarkerFooter = 3
)

// Header is the SparseExtentHeader, used both as the header in sector 0 and
// as the footer before the end-of-stream marker.
type Header struct {
	Capacity         uint64 // disk size in sectors
	DescriptorOffset uint64 // sectors
	DescriptorSize   uint64 // sectors
	GDOffset         uint64 // sectors; gdAtEnd in the header of a stream
	OverHead         uint64 // sectors before the first grain
}

// MarshalBinary encodes h as one 512-byte sector.
func (h Header) MarshalBinary() ([]byte, error) {
	b := make([]byte, SectorSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], magic)
	le.PutUint32(b[4:], 3) // version 3: streamOptimized with markers
	le.PutUint32(b[8:], flagValidNewlineTest|flagCompressed|flagMarkers)
	le.PutUint64(b[12:], h.Capacity)
	le.PutUint64(b[20:], GrainSectors)
	le.PutUint64(b[28:], h.DescriptorOffset)
	le.PutUint64(b[36:], h.DescriptorSize)
	le.PutUint32(b[44:], GTEntries)
	le.PutUint64(b[48:], 0) // rgdOffset: no redundant GD in a stream
	le.PutUint64(b[56:], h.GDOffset)
	le.PutUint64(b[64:], h.OverHead)
	b[72] = 0 // uncleanShutdown
	b[73] = '\n'
	b[74] = ' '
	b[75] = '\r'
	b[76] = '\n'
	le.PutUint16(b[77:], compressDeflate)
	return b, nil
}

// UnmarshalBinary decodes a header sector and checks the fields this
// package depends on.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < SectorSize {
		return fmt.Errorf("vmdk header: %d bytes, want %d", len(b), SectorSize)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != magic {
		return fmt.Errorf("vmdk header: magic %#x, want %#x", m, magic)
	}
	if v := le.Uint32(b[4:]); v != 3 {
		return fmt.Errorf("vmdk header: version %d, want 3", v)
	}
	if f := le.Uint32(b[8:]); f&(flagCompressed|flagMarkers) != flagCompressed|flagMarkers {
		return fmt.Errorf("vmdk header: flags %#x lack compressed grains and markers", f)
	}
	if g := le.Uint64(b[20:]); g != GrainSectors {
		return fmt.Errorf("vmdk header: grain size %d sectors, want %d", g, GrainSectors)
	}
	if n := le.Uint32(b[44:]); n != GTEntries {
		return fmt.Errorf("vmdk header: %d entries per grain table, want %d", n, GTEntries)
	}
	if c := le.Uint16(b[77:]); c != compressDeflate {
		return fmt.Errorf("vmdk header: compression %d, want deflate", c)
	}
	if string(b[73:77]) != "\n \r\n" {
		return fmt.Errorf("vmdk header: newline test bytes %q corrupted", b[73:77])
	}
	h.Capacity = le.Uint64(b[12:])
	h.DescriptorOffset = le.Uint64(b[28:])
	h.DescriptorSize = le.Uint64(b[36:])
	h.GDOffset = le.Uint64(b[56:])
	h.OverHead = le.Uint64(b[64:])
	return nil
}

// metadataMarker returns the sector that announces n sectors of metadata of
// type typ (or, for MarkerEOS with n=0, the end of the stream).
func metadataMarker(n uint64, typ uint32) []byte {
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint64(b[0:], n)
	binary.LittleEndian.PutUint32(b[8:], 0)
	binary.LittleEndian.PutUint32(b[12:], typ)
	return b
}

// grainMarkerSize is the size of a grain marker before the compressed data:
// the grain's LBA (uint64) and the compressed size (uint32).
const grainMarkerSize = 12
