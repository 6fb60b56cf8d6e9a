// Package gpt reads GUID partition tables (UEFI spec §5.3) from disk images:
// the header at LBA 1, its CRCs and the partition entries. It is the
// independent check the image tests use on what sfdisk wrote.
package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// SectorSize is the logical sector size of the images we build.
const SectorSize = 512

// Table is a parsed GPT.
type Table struct {
	DiskGUID       string
	FirstUsableLBA uint64
	LastUsableLBA  uint64
	BackupLBA      uint64
	Partitions     []Partition // in table order, empty entries left out
}

// Partition is one used entry. Offsets and sizes are in bytes.
type Partition struct {
	Number   int // 1-based index in the entry array
	Name     string
	TypeGUID string
	GUID     string
	FirstLBA uint64
	LastLBA  uint64
}

// Offset is where the partition starts, in bytes.
func (p Partition) Offset() int64 { return int64(p.FirstLBA) * SectorSize }

// Size is the partition's length in bytes.
func (p Partition) Size() int64 { return int64(p.LastLBA-p.FirstLBA+1) * SectorSize }

// ByName returns the partition labelled name.
func (t *Table) ByName(name string) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}

// ErrNoGPT is returned when LBA 1 holds no GPT signature.
var ErrNoGPT = errors.New("no GPT header at LBA 1")

// Read parses the primary GPT of r and checks its header and entry CRCs.
func Read(r io.ReaderAt) (*Table, error) {
	hdr := make([]byte, SectorSize)
	if _, err := r.ReadAt(hdr, SectorSize); err != nil {
		return nil, fmt.Errorf("reading GPT header: %w", err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, ErrNoGPT
	}
	le := binary.LittleEndian
	hdrSize := le.Uint32(hdr[12:])
	if hdrSize < 92 || hdrSize > SectorSize {
		return nil, fmt.Errorf("GPT header size %d out of range", hdrSize)
	}
	want := le.Uint32(hdr[16:])
	check := bytes.Clone(hdr[:hdrSize])
	binary.LittleEndian.PutUint32(check[16:], 0)
	if got := crc32.ChecksumIEEE(check); got != want {
		return nil, fmt.Errorf("GPT header CRC %08x, want %08x", got, want)
	}
	t := &Table{
		BackupLBA:      le.Uint64(hdr[32:]),
		FirstUsableLBA: le.Uint64(hdr[40:]),
		LastUsableLBA:  le.Uint64(hdr[48:]),
		DiskGUID:       guid(hdr[56:72]),
	}
	entriesLBA := le.Uint64(hdr[72:])
	n := le.Uint32(hdr[80:])
	esize := le.Uint32(hdr[84:])
	if esize < 128 || n > 1024 {
		return nil, fmt.Errorf("GPT entry array %d×%d out of range", n, esize)
	}
	entries := make([]byte, int(n)*int(esize))
	if _, err := r.ReadAt(entries, int64(entriesLBA)*SectorSize); err != nil {
		return nil, fmt.Errorf("reading GPT entries: %w", err)
	}
	if got, want := crc32.ChecksumIEEE(entries), le.Uint32(hdr[88:]); got != want {
		return nil, fmt.Errorf("GPT entries CRC %08x, want %08x", got, want)
	}
	for i := 0; i < int(n); i++ {
		e := entries[i*int(esize) : (i+1)*int(esize)]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		t.Partitions = append(t.Partitions, Partition{
			Number:   i + 1,
			TypeGUID: guid(e[0:16]),
			GUID:     guid(e[16:32]),
			FirstLBA: le.Uint64(e[32:]),
			LastLBA:  le.Uint64(e[40:]),
			Name:     name(e[56:128]),
		})
	}
	return t, nil
}

// guid formats a mixed-endian GUID as text (upper case, as sfdisk prints).
func guid(b []byte) string {
	le := binary.LittleEndian
	return strings.ToUpper(fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16]))
}

func name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
