package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// tlsPair returns a TLS 1.3 connection over loopback TCP whose client
// side writes through a BatchConn over a countingConn, and the server
// side reading through a BatchConn too.
func tlsPair(t *testing.T) (client *tls.Conn, batch *BatchConn, raw *countingConn, server *tls.Conn) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"cp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	sln := tls.NewListener(BatchListener(ln), &tls.Config{MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	accepted := make(chan *tls.Conn, 1)
	go func() {
		c, err := sln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c.(*tls.Conn)
	}()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw = &countingConn{Conn: nc}
	batch = NewBatchConn(raw)
	client = tls.Client(batch, &tls.Config{ServerName: "cp.test", RootCAs: pool, MinVersion: tls.VersionTLS13})
	t.Cleanup(func() { client.Close() })
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close() })
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil { // handshake writes are not held
		t.Fatalf("handshake through BatchConn: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if _, ok := server.NetConn().(*BatchConn); !ok {
		t.Fatalf("BatchListener gave the TLS layer a %T, want *BatchConn", server.NetConn())
	}
	return client, batch, raw, server
}

func TestBatchConnSendsALargeFrameInOneWrite(t *testing.T) {
	client, batch, raw, server := tlsPair(t)
	c := CoalescingConn(client, batch)

	body := make([]byte, 256<<10) // 16 TLS records
	for i := range body {
		body[i] = byte(i * 7)
	}
	small := []byte("interactive")
	frames := [][]byte{muxHeader(muxTypeData, uint32(len(body))), body,
		muxHeader(muxTypeData, uint32(len(small))), small}
	var want bytes.Buffer
	for _, p := range frames {
		want.Write(p)
	}

	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, want.Len())
		io.ReadFull(server, b)
		got <- b
	}()
	before := raw.count()
	for _, p := range frames {
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
	}
	if w := raw.count() - before; w != 2 {
		t.Errorf("socket writes for a 256 KiB frame and a small one = %d, want 2 (one each)", w)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, want.Bytes()) {
			t.Errorf("peer read %d bytes that differ from the %d written", len(b), want.Len())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("peer did not receive the frames")
	}
}

func TestBatchConnReportsAFailedFlush(t *testing.T) {
	client, batch, raw, _ := tlsPair(t)
	c := CoalescingConn(client, batch)
	raw.Conn.Close() // the socket is gone; TLS does not know yet

	c.Write(muxHeader(muxTypeData, 64<<10))
	n, err := c.Write(make([]byte, 64<<10))
	if err == nil || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write of a held frame on a closed socket = %d, %v; want the socket's error", n, err)
	}
	if n != 0 {
		t.Errorf("Write counted %d bytes as sent that never left", n)
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// within fails the test when fn has not returned after a generous limit:
// it catches a goroutine that is blocked for good, not a slow one.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s is still blocked", what)
	}
}

// TestBatchConnWriteDoesNotWaitForABlockedFlush: while one goroutine's
// flush is stuck on a full socket, another goroutine's write (TLS sending
// close_notify on Close, say) is queued behind it and returns, instead of
// waiting for the socket; the bytes still leave in order.
func TestBatchConnWriteDoesNotWaitForABlockedFlush(t *testing.T) {
	raw, peer := tcpPair(t)
	b := NewBatchConn(raw)
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB: more than loopback's socket buffers hold
	flushed := make(chan error, 1)
	b.hold()
	b.Write(big)
	go func() { flushed <- b.release() }()
	waitFlushing := time.Now().Add(20 * time.Second)
	for {
		b.mu.Lock()
		f := b.flushing
		b.mu.Unlock()
		if f {
			break
		}
		if time.Now().After(waitFlushing) {
			t.Fatal("the release never started writing")
		}
		time.Sleep(time.Millisecond)
	}
	within(t, "a write during a blocked flush", func() {
		if n, err := b.Write([]byte("tail")); n != 4 || err != nil {
			t.Errorf("Write during a flush = %d, %v; want it queued", n, err)
		}
	})
	got, err := io.ReadAll(io.LimitReader(peer, int64(len(big)+4)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(big, "tail"...)) {
		t.Errorf("peer read %d bytes that are not the held frame followed by the later write", len(got))
	}
	if err := <-flushed; err != nil {
		t.Errorf("release = %v", err)
	}
}

// TestBatchConnFailureIsSticky: once a flush failed, TLS's records have a
// gap, so every later write fails too instead of sending a corrupt stream.
func TestBatchConnFailureIsSticky(t *testing.T) {
	raw, _ := tcpPair(t)
	b := NewBatchConn(raw)
	raw.Close()
	b.hold()
	b.Write([]byte("frame"))
	if err := b.release(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("release on a closed socket = %v, want net.ErrClosed", err)
	}
	if n, err := b.Write([]byte("alert")); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after a failed flush = %d, %v; want 0 and the first error", n, err)
	}
}
