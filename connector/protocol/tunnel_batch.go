package protocol

import (
	"bufio"
	"net"
	"sync"
)

// batchReadSize is the read buffer under the tunnel's TLS layer: one
// read system call takes up to this many bytes of records off the socket.
const batchReadSize = 128 << 10

// BatchConn wraps the TCP connection under the tunnel's TLS layer to cut
// system calls, the tunnel's largest cost on a fast path (tests/bench):
//
//   - Reads go through a buffer, so one read takes many TLS records off the
//     socket instead of one record, or less, per call.
//   - Between hold and release, writes are gathered and leave in one write
//     when the last hold is released. crypto/tls writes every record (at
//     most 16 KiB) on its own; CoalescingConn holds the connection while it
//     hands a large yamux frame to TLS, so the frame's records go out in one
//     system call instead of one per record.
//
// Outside a hold, writes go straight through, so handshake messages and
// alerts are never delayed.
type BatchConn struct {
	net.Conn
	r *bufio.Reader

	mu   sync.Mutex
	held int
	buf  []byte
}

// NewBatchConn wraps c. Pass the result to tls.Client or tls.Server, and
// the TLS connection to CoalescingConn, which finds it with NetConn.
func NewBatchConn(c net.Conn) *BatchConn {
	return &BatchConn{Conn: c, r: bufio.NewReaderSize(c, batchReadSize)}
}

func (b *BatchConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *BatchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held > 0 {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

// hold starts gathering writes.
func (b *BatchConn) hold() {
	b.mu.Lock()
	b.held++
	b.mu.Unlock()
}

// release ends a hold; the last one writes what was gathered. Its error is
// the write's: the TLS layer above already counted those bytes as sent, so
// the caller must treat the connection as failed.
func (b *BatchConn) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held--
	if b.held > 0 || len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	if cap(b.buf) <= 1<<20 {
		b.buf = b.buf[:0]
	} else {
		b.buf = nil // a one-off huge frame: do not keep its buffer
	}
	return err
}

// BatchListener wraps every connection ln accepts in a BatchConn; put it
// under tls.NewListener.
func BatchListener(ln net.Listener) net.Listener { return batchListener{ln} }

type batchListener struct{ net.Listener }

func (l batchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewBatchConn(c), nil
}
