package lab

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/transport"
)

// TunnelHandler takes over a TLS connection that selected the tunnel
// protocol (ALPN protocol.ALPNTunnel); it authorises the client
// certificate itself (so it can tell the connector why it is refused).
// ServeTunnel owns conn and returns when the tunnel ends or ctx ends.
type TunnelHandler interface {
	ServeTunnel(ctx context.Context, conn *tls.Conn)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Authority *Authority
	// Listen is the TCP address; "" means 127.0.0.1:0.
	Listen string
	// Hosts go into the server certificate's SANs; nil means the listen
	// host, 127.0.0.1 and localhost.
	Hosts []string
	// Tunnel serves tunnel connections; nil rejects them (closed after
	// the handshake).
	Tunnel TunnelHandler
	Logger *slog.Logger // nil discards
}

// Server is the lab control plane's one TLS listener: enrolment over
// HTTPS and, through ALPN, the tunnel.
type Server struct {
	cfg   ServerConfig
	ln    net.Listener
	http  *http.Server
	hl    *chanListener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]string // tunnel connections → connector ID from the certificate
	// ctx ends at Close; tunnels are served under it.
	ctx    context.Context
	cancel context.CancelFunc
}

// NewServer listens and starts serving in the background.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Authority == nil {
		return nil, errors.New("server needs an authority")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := cfg.Authority
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	if cfg.Hosts == nil {
		cfg.Hosts = []string{"127.0.0.1", "localhost"}
		if host != "" && host != "127.0.0.1" && host != "0.0.0.0" && host != "::" {
			cfg.Hosts = append(cfg.Hosts, host)
		}
	}
	cert, key, der, err := a.ca.serverCert(cfg.Hosts, a.cfg.Now(), a.cfg.Rand)
	if err != nil {
		return nil, err
	}
	tcfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der, a.ca.Cert.Raw}, PrivateKey: key, Leaf: cert}},
		NextProtos:   []string{protocol.ALPNTunnel, protocol.ALPNHTTP},
		// Requested, not verified at the TLS layer: Authenticate and the
		// broker verify it and answer with a typed refusal the connector
		// can tell apart from a TLS-inspecting proxy's alert.
		ClientAuth: tls.RequestClientCert,
		MinVersion: tls.VersionTLS13, // enrolment and the tunnel alike
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, ln: tls.NewListener(transport.BatchListener(ln), tcfg), conns: map[net.Conn]string{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hl = &chanListener{addr: ln.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}
	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.http.Serve(s.hl) }()
	go func() { defer s.wg.Done(); s.acceptLoop() }()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the control plane URL connectors are configured with.
func (s *Server) URL() string { return "https://" + s.ln.Addr().String() }

// Close stops listening and closes every connection, tunnels included.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.cancel()
	s.hl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.http.Shutdown(ctx)
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.dispatch(c.(*tls.Conn)) }()
	}
}

func (s *Server) track(c net.Conn, id string, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.conns[c] = id
	} else {
		delete(s.conns, c)
	}
}

// Disconnect closes every tunnel connection whose client certificate
// names connector id (after a revocation or a recovery): the connector
// reconnects and is then refused or accepted by the broker with its
// current certificate.
func (s *Server) Disconnect(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c, cid := range s.conns {
		if cid == id {
			c.Close()
			n++
		}
	}
	return n
}

// dispatch completes the handshake and routes by ALPN.
func (s *Server) dispatch(c *tls.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		s.cfg.Logger.Debug("tls handshake failed", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	cs := c.ConnectionState()
	if cs.NegotiatedProtocol != protocol.ALPNTunnel {
		select {
		case s.hl.ch <- c:
		case <-s.hl.done:
			c.Close()
		}
		return
	}
	if s.cfg.Tunnel == nil {
		s.cfg.Logger.Info("tunnel refused: this control plane has no tunnel broker", "remote", c.RemoteAddr())
		c.Close()
		return
	}
	id := ""
	if len(cs.PeerCertificates) > 0 {
		id, _ = protocol.ConnectorIDFromURIs(cs.PeerCertificates[0].URIs)
	}
	s.track(c, id, true)
	defer s.track(c, id, false)
	s.cfg.Tunnel.ServeTunnel(s.ctx, c)
}

func (s *Server) handler() http.Handler {
	a := s.cfg.Authority
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.EnrolStartPath, func(w http.ResponseWriter, r *http.Request) {
		var req protocol.EnrolStartRequest
		if !decode(w, r, &req) {
			return
		}
		res, err := a.StartEnrol(req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST "+protocol.EnrolFinishPath, func(w http.ResponseWriter, r *http.Request) {
		var req protocol.EnrolFinishRequest
		if !decode(w, r, &req) {
			return
		}
		res, err := a.FinishEnrol(req)
		if err == nil {
			s.cfg.Logger.Info("connector enrolled", "connector", res.ConnectorID, "recovery", res.Recovery)
		}
		reply(w, res, err)
	})
	mux.HandleFunc("GET "+protocol.WhoAmIPath, func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			reply(w, nil, apiErr(http.StatusUnauthorized, protocol.CodeNoClientCert, "this endpoint needs the connector's client certificate"))
			return
		}
		id, err := a.Authenticate(r.TLS.PeerCertificates[0])
		if err != nil {
			reply(w, nil, err)
			return
		}
		c, _ := a.Connector(id)
		reply(w, protocol.WhoAmI{ConnectorID: id, Name: c.Name, Status: c.Status}, nil)
	})
	mux.HandleFunc("GET /v1/update/{offer}/{name}", a.serveUpdateFile)
	return mux
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		reply(w, nil, apiErr(http.StatusBadRequest, protocol.CodeBadRequest, "request body does not decode"))
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		var e *APIError
		if !errors.As(err, &e) {
			e = apiErr(http.StatusInternalServerError, protocol.CodeInternal, "internal error")
		}
		w.WriteHeader(e.HTTPStatus)
		json.NewEncoder(w).Encode(protocol.ErrorResponse{Code: e.Code, Message: e.Message, CertSHA256: e.CertSHA256})
		return
	}
	json.NewEncoder(w).Encode(v)
}

// chanListener feeds already-handshaken TLS connections to http.Server.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
