package protocol

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
func CoalescingConn(c io.ReadWriteCloser) io.ReadWriteCloser {
	return &coalescingConn{ReadWriteCloser: c}
}

type coalescingConn struct {
	io.ReadWriteCloser
	mu  sync.Mutex
	hdr []byte // a pending data header, nil if none
	buf []byte
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
