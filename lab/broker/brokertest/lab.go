package brokertest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/vaultpam/appliance/connector/transport"
	"github.com/vaultpam/appliance/lab/broker"
)

// ServerTLS returns the control plane's TLS config: TLS 1.3 only, the
// client certificate requested but not verified at the TLS layer (the
// broker verifies it against its ClientCAs and answers with a typed
// refusal).
func (p *PKI) ServerTLS() (*tls.Config, error) {
	cert, err := p.ServerCert()
	if err != nil {
		return nil, err
	}
	return ServerTLSWith(cert), nil
}

// ServerTLSWith is ServerTLS with a given server certificate.
func ServerTLSWith(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{broker.TunnelALPN, "http/1.1"},
	}
}

// Server is a Broker served on a loopback TLS listener.
type Server struct {
	Broker *broker.Broker
	Addr   string
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Serve starts b on addr ("127.0.0.1:0" for any port) with tlsConf.
func Serve(b *broker.Broker, addr string, tlsConf *tls.Config) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Broker: b, Addr: ln.Addr().String(), ln: ln, cancel: cancel}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		b.Serve(ctx, tls.NewListener(transport.BatchListener(ln), tlsConf))
	}()
	return s, nil
}

// Close stops listening and ends every tunnel.
func (s *Server) Close() {
	s.ln.Close()
	s.cancel()
	s.Broker.Close()
	s.wg.Wait()
}

// Echo is a TCP echo target on loopback; each connection echoes until EOF
// and then half-closes.
type Echo struct {
	Addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// NewEcho starts an echo target on 127.0.0.1.
func NewEcho() (*Echo, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &Echo{Addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns[c] = true
			e.mu.Unlock()
			go func() {
				defer func() {
					c.Close()
					e.mu.Lock()
					delete(e.conns, c)
					e.mu.Unlock()
				}()
				buf := make([]byte, 64<<10)
				if _, err := io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, buf); err != nil && !errors.Is(err, net.ErrClosed) {
					return
				}
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return e, nil
}

// Close stops the target and closes its connections.
func (e *Echo) Close() {
	e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
}
