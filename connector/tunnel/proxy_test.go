package tunnel_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// connectProxy is a minimal HTTP CONNECT proxy on loopback.
type connectProxy struct {
	addr string
	mu   sync.Mutex
	auth []string // Proxy-Authorization headers seen
	hits int
}

func newConnectProxy(t *testing.T) *connectProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &connectProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
		return
	}
	p.mu.Lock()
	p.auth = append(p.auth, req.Header.Get("Proxy-Authorization"))
	p.hits++
	p.mu.Unlock()
	up, err := net.Dial("tcp", req.Host)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite() }()
	io.Copy(c, up)
}

// TestThroughProxy: the tunnel goes through an HTTP CONNECT proxy with
// basic credentials and sessions work through it.
func TestThroughProxy(t *testing.T) {
	p := newConnectProxy(t)
	h := brokertest.NewHarness(t, brokertest.Options{EditClient: func(c *tunnel.Config) {
		c.Proxy = &url.URL{Scheme: "http", Host: p.addr, User: url.UserPassword("conn", "s3cret")}
	}})
	h.WaitOnline()
	s, err := h.Broker.Dial(context.Background(), "c1", h.Echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(s, "via proxy")
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "via proxy" {
		t.Fatalf("echo through proxy = %q, %v", got, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hits != 1 || p.auth[0] != "Basic Y29ubjpzM2NyZXQ=" {
		t.Errorf("proxy saw %d CONNECTs with auth %q, want 1 with Basic conn:s3cret", p.hits, p.auth)
	}
}
