package vmdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Stats describes a written disk.
type Stats struct {
	Size       int64 // bytes written to the output, the VMDK file size
	Capacity   int64 // virtual disk size in bytes
	Grains     int   // grains stored
	ZeroGrains int   // all-zero grains skipped
}

// Write reads exactly size bytes of raw disk from r and writes a
// streamOptimized VMDK of that capacity to w. size must be a positive
// multiple of 512. w only sees sequential writes, so it can be a pipe, a
// hash or a tar entry. Write holds at most a few grains per worker in
// memory. It stops early and returns ctx.Err() when ctx is cancelled.
func Write(ctx context.Context, w io.Writer, r io.Reader, size int64, cfg *Config) (Stats, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if err := cfg.Validate(); err != nil {
		return Stats{}, fmt.Errorf("vmdk config: %w", err)
	}
	if size <= 0 || size%SectorSize != 0 {
		return Stats{}, fmt.Errorf("disk size %d: want a positive multiple of %d bytes", size, SectorSize)
	}
	sw := &streamWriter{w: w}
	st := Stats{Capacity: size}
	capacity := uint64(size / SectorSize)

	// Header, then the descriptor padded to whole sectors.
	desc := []byte(descriptor(cfg, capacity))
	descSectors := uint64((len(desc) + SectorSize - 1) / SectorSize)
	hdr := Header{
		Capacity:         capacity,
		DescriptorOffset: 1,
		DescriptorSize:   descSectors,
		GDOffset:         gdAtEnd,
		OverHead:         1 + descSectors,
	}
	hb, _ := hdr.MarshalBinary()
	sw.write(hb)
	sw.write(padSector(desc))

	numGrains := (size + GrainSize - 1) / GrainSize
	numGTs := (numGrains + GTEntries - 1) / GTEntries
	gd := make([]uint32, numGTs)
	gt := make([]uint32, GTEntries)
	curGT := int64(0)
	gtUsed := false
	flushGT := func() {
		if gtUsed {
			sw.write(metadataMarker(GTEntries*4/SectorSize, MarkerGT))
			gd[curGT] = uint32(sw.sector())
			sw.write(uint32s(gt))
		}
		clear(gt)
		gtUsed = false
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := compressGrains(ctx, r, size, cfg)
	for g := range results {
		if g.err != nil {
			cancel()
			drain(results)
			return st, g.err
		}
		if sw.err != nil {
			cancel()
			drain(results)
			return st, fmt.Errorf("writing vmdk: %w", sw.err)
		}
		if t := g.index / GTEntries; t != curGT {
			flushGT()
			curGT = t
		}
		if g.zero {
			st.ZeroGrains++
			continue
		}
		if sw.sector() > math.MaxUint32-GTEntries {
			// Grain table entries are 32-bit sector offsets: 2 TiB of file.
			cancel()
			drain(results)
			return st, errTooLarge
		}
		gt[g.index%GTEntries] = uint32(sw.sector())
		gtUsed = true
		sw.write(g.out)
		g.release()
		st.Grains++
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	flushGT()

	gdBytes := padSector(uint32s(gd))
	sw.write(metadataMarker(uint64(len(gdBytes)/SectorSize), MarkerGD))
	hdr.GDOffset = sw.sector()
	sw.write(gdBytes)

	sw.write(metadataMarker(1, MarkerFooter))
	fb, _ := hdr.MarshalBinary()
	sw.write(fb)
	sw.write(metadataMarker(0, MarkerEOS))
	st.Size = sw.n
	if sw.err != nil {
		return st, fmt.Errorf("writing vmdk: %w", sw.err)
	}
	return st, nil
}

func drain(c <-chan grain) {
	for g := range c {
		g.release()
	}
}

// streamWriter counts what it writes and remembers the first error.
type streamWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (s *streamWriter) write(b []byte) {
	if s.err != nil {
		return
	}
	n, err := s.w.Write(b)
	s.n += int64(n)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	s.err = err
}

// sector is the current output offset in sectors; every write keeps it
// sector aligned.
func (s *streamWriter) sector() uint64 { return uint64(s.n / SectorSize) }

func padSector(b []byte) []byte {
	if r := len(b) % SectorSize; r != 0 || len(b) == 0 {
		b = append(b, make([]byte, SectorSize-r)...)
	}
	return b
}

func uint32s(v []uint32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return b
}

var (
	errShortInput = errors.New("raw disk shorter than its size")
	errTooLarge   = errors.New("vmdk would exceed 2 TiB, the limit of a sparse extent")
)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroGrain))
		if !bytes.Equal(b[:n], zeroGrain[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

var zeroGrain = make([]byte, GrainSize)
