package transport

import (
	"bufio"
	"net"
	"sync"
)

// batchReadSize is the read buffer under the tunnel's TLS layer: one
// read system call takes up to this many bytes of records off the socket.
const batchReadSize = 128 << 10

// BatchConn wraps the TCP connection under the tunnel's TLS layer to cut
// system calls, the tunnel's largest cost on a fast path (the tunnel benchmarks in tests/bench):
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
// alerts are never delayed. One goroutine at a time writes to the socket
// (the flusher); writes that arrive meanwhile are queued behind what it
// writes, in order, and it writes them too. So no Write waits for another
// goroutine's blocked socket write: closing the TLS connection while a
// flush is stuck on a full socket queues the close_notify alert and closes
// the socket at once, as it would without BatchConn. A failed socket write
// fails every later Write: TLS already counted the lost records as sent,
// so the stream cannot go on.
//
// Memory: the read buffer (batchReadSize) for the connection's life, and a
// pooled write buffer only while a hold or a flush has bytes queued.
type BatchConn struct {
	net.Conn
	r *bufio.Reader

	mu       sync.Mutex
	held     int
	flushing bool    // a goroutine is writing to the socket
	queue    *[]byte // bytes waiting for the flusher or the last release; nil when empty
	err      error   // the first socket write error; sticky
}

var queuePool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// NewBatchConn wraps c. Pass the result to tls.Client or tls.Server, and
// the TLS connection to CoalescingConn, which finds it with NetConn.
func NewBatchConn(c net.Conn) *BatchConn {
	return &BatchConn{Conn: c, r: bufio.NewReaderSize(c, batchReadSize)}
}

func (b *BatchConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *BatchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	if b.held > 0 || b.flushing {
		b.enqueue(p)
		b.mu.Unlock()
		return len(p), nil
	}
	b.flushing = true
	b.mu.Unlock()
	n, err := b.Conn.Write(p)
	if ferr := b.flush(err); err == nil && ferr != nil {
		// p left; what was queued behind it did not.
		return n, ferr
	}
	return n, err
}

func (b *BatchConn) enqueue(p []byte) {
	if b.queue == nil {
		b.queue = queuePool.Get().(*[]byte)
	}
	*b.queue = append(*b.queue, p...)
}

// hold starts gathering writes.
func (b *BatchConn) hold() {
	b.mu.Lock()
	b.held++
	b.mu.Unlock()
}

// release ends a hold. The last one writes what was gathered, unless
// another goroutine is writing to the socket: that one writes it next. The
// error is the socket's: the TLS layer above already counted those bytes
// as sent, so the caller must treat the connection as failed.
func (b *BatchConn) release() error {
	b.mu.Lock()
	b.held--
	if b.held > 0 || b.flushing || b.queue == nil {
		err := b.err
		b.mu.Unlock()
		return err
	}
	b.flushing = true
	b.mu.Unlock()
	return b.flush(nil)
}

// flush is run by the flusher after its own write (whose error is werr):
// it writes what was queued meanwhile until nothing is left or a hold has
// started, then stops being the flusher.
func (b *BatchConn) flush(werr error) error {
	for {
		b.mu.Lock()
		if werr != nil && b.err == nil {
			b.err = werr
		}
		if b.err != nil || b.held > 0 || b.queue == nil {
			if b.err != nil && b.queue != nil {
				b.drop()
			}
			b.flushing = false
			err := b.err
			b.mu.Unlock()
			return err
		}
		q := b.queue
		b.queue = nil
		b.mu.Unlock()
		_, werr = b.Conn.Write(*q)
		if cap(*q) <= 1<<20 {
			*q = (*q)[:0]
			queuePool.Put(q)
		}
	}
}

// drop forgets queued bytes that can no longer be sent; b.mu is held.
func (b *BatchConn) drop() {
	*b.queue = (*b.queue)[:0]
	queuePool.Put(b.queue)
	b.queue = nil
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
