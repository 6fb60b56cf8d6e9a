package vmdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/klauspost/compress/zlib"
	"io"
	"sync"
)

// grain is one 64 KiB grain on its way from the reader to the output.
type grain struct {
	index int64
	zero  bool
	out   []byte // marker, compressed data, padding to a sector
	err   error
	pool  *sync.Pool
	buf   *bytes.Buffer
}

func (g grain) release() {
	if g.buf != nil {
		g.pool.Put(g.buf)
	}
}

type job struct {
	index int64
	in    []byte
	done  chan grain
}

// compressGrains reads size bytes from r grain by grain and returns the
// compressed grains in disk order. Workers compress in parallel; at most
// 2*workers grains are in flight, so memory stays bounded whatever the disk
// size. The channel is closed after the last grain or after the first error,
// which is sent as a grain with err set.
func compressGrains(ctx context.Context, r io.Reader, size int64, cfg *Config) <-chan grain {
	workers := cfg.workers()
	inPool := &sync.Pool{New: func() any { b := make([]byte, GrainSize); return &b }}
	outPool := &sync.Pool{New: func() any { return new(bytes.Buffer) }}
	work := make(chan job, workers)
	order := make(chan chan grain, 2*workers)
	results := make(chan grain)

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var zw *zlib.Writer
			for j := range work {
				g := grain{index: j.index, pool: outPool}
				if isZero(j.in) {
					g.zero = true
				} else {
					buf := outPool.Get().(*bytes.Buffer)
					buf.Reset()
					var m [grainMarkerSize]byte
					binary.LittleEndian.PutUint64(m[0:], uint64(j.index*GrainSectors))
					buf.Write(m[:])
					if zw == nil {
						zw, _ = zlib.NewWriterLevel(buf, cfg.Level) // level checked by Validate
					} else {
						zw.Reset(buf)
					}
					zw.Write(j.in)
					if err := zw.Close(); err != nil {
						g.err = fmt.Errorf("compressing grain %d: %w", j.index, err)
					}
					out := buf.Bytes()
					binary.LittleEndian.PutUint32(out[8:], uint32(len(out)-grainMarkerSize))
					if pad := len(out) % SectorSize; pad != 0 {
						buf.Write(zeroGrain[:SectorSize-pad])
					}
					g.buf, g.out = buf, buf.Bytes()
				}
				b := j.in[:GrainSize]
				inPool.Put(&b)
				j.done <- g
			}
		}()
	}

	// Reader: hands grains to the workers and their result slots, in
	// order, to the collector.
	go func() {
		defer close(order)
		defer close(work)
		numGrains := (size + GrainSize - 1) / GrainSize
		for i := range numGrains {
			bp := inPool.Get().(*[]byte)
			in := *bp
			n := min(int64(GrainSize), size-i*GrainSize)
			if _, err := io.ReadFull(r, in[:n]); err != nil {
				if err == io.ErrUnexpectedEOF || err == io.EOF {
					err = errShortInput
				}
				done := make(chan grain, 1)
				done <- grain{index: i, err: fmt.Errorf("reading raw disk at byte %d: %w", i*GrainSize, err)}
				order <- done
				return
			}
			// The last grain of a disk that is not a multiple of the grain
			// size is padded with zeros: readers expect whole grains.
			clear(in[n:])
			done := make(chan grain, 1)
			select {
			case order <- done:
			case <-ctx.Done():
				return
			}
			select {
			case work <- job{index: i, in: in, done: done}:
			case <-ctx.Done():
				done <- grain{index: i, err: ctx.Err()}
				return
			}
		}
	}()

	// Collector: forwards results in order.
	go func() {
		defer close(results)
		defer wg.Wait()
		for done := range order {
			g := <-done
			select {
			case results <- g:
			case <-ctx.Done():
				g.release()
				for d := range order {
					(<-d).release()
				}
				return
			}
			if g.err != nil {
				for d := range order {
					(<-d).release()
				}
				return
			}
		}
	}()
	return results
}
