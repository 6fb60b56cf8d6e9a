package transport

import (
	"encoding/binary"
	"io"
	"sync"
)

// yamux frame header: version(1) type(1) flags(2) stream(4) length(4).
const (
	muxHeaderSize = 12
	muxTypeData   = 0
)

// CoalescingConn wraps the connection under a yamux session so that a
// data frame's 12-byte header and its body go out in one Write. yamux's
// send loop writes them separately, which over TLS means a 12-byte record
// of its own, and a syscall, for every frame. Pass the result to
// yamux.Client or yamux.Server; it relies on that send loop writing a data
// header immediately followed by its body from one goroutine.
//
// batch, when not nil, is the BatchConn under c's TLS layer. A large body
// is then not copied behind its header: header and body are written as
// two TLS writes inside one hold of batch, so the frame still leaves in
// one system call, and the copy is saved.
func CoalescingConn(c io.ReadWriteCloser, batch *BatchConn) io.ReadWriteCloser {
	return &coalescingConn{ReadWriteCloser: c, batch: batch}
}

// bigBody is the body size from which a held write beats copying: such a
// body fills at least one TLS record, so a record of its own for the
// 12-byte header costs little next to copying the body.
const bigBody = 16 << 10

type coalescingConn struct {
	io.ReadWriteCloser
	batch *BatchConn
	mu    sync.Mutex
	hdr   []byte // a pending data header, nil if none
	buf   []byte
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hdr == nil {
		if len(p) == muxHeaderSize && p[1] == muxTypeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
			c.hdr = append(c.buf[:0], p...)
			return len(p), nil
		}
		return c.ReadWriteCloser.Write(p)
	}
	if c.batch != nil && len(p) >= bigBody {
		return c.writeHeld(p)
	}
	out := append(c.hdr, p...)
	c.hdr = nil
	n, err := c.ReadWriteCloser.Write(out)
	if cap(out) <= 256<<10 {
		c.buf = out[:0]
	} else {
		c.buf = nil
	}
	n -= muxHeaderSize
	if n < 0 {
		n = 0
	}
	return n, err
}

// writeHeld writes the pending header and body p as two writes gathered
// by the BatchConn under the TLS layer.
func (c *coalescingConn) writeHeld(p []byte) (int, error) {
	hdr := c.hdr
	c.hdr = nil
	c.buf = hdr[:0]
	c.batch.hold()
	_, err := c.ReadWriteCloser.Write(hdr)
	n := 0
	if err == nil {
		n, err = c.ReadWriteCloser.Write(p)
	}
	if rerr := c.batch.release(); err == nil && rerr != nil {
		n, err = 0, rerr
	}
	return n, err
}
