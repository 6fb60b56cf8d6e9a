package bench

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
)

// server is a loopback TCP target.
type server struct {
	ln    net.Listener
	Addr  string
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func listen(handle func(net.Conn)) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{ln: ln, Addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			go func() {
				handle(c)
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

func (s *server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

// echo copies back what it reads, then half-closes.
func echo(c net.Conn) {
	buf := make([]byte, 32<<10)
	io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, buf)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// sink reads until EOF and answers with the byte count (8 bytes), so the
// sender knows every byte arrived.
func sink(c net.Conn) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := c.Read(buf)
		n += int64(k)
		if err != nil {
			break
		}
	}
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], uint64(n))
	c.Write(out[:])
}
