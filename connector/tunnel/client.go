package tunnel

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/transport"
)

// Client keeps the connector's tunnel to the control plane up. Create it
// with New, run it with Run, stop it gracefully with Shutdown or at once by
// cancelling Run's context. Its methods are safe for concurrent use.
type Client struct {
	cfg   Config
	allow *Allowlist
	log   *slog.Logger
	rand  io.Reader

	certNotAfter  atomic.Int64 // unix nanos of the current certificate
	certNotBefore atomic.Int64

	mu       sync.Mutex
	status   Status
	draining bool
	drainCh  chan struct{} // closed when Shutdown starts
	cur      *conn         // the tunnel while it is up
	sessions map[string]*relay
	idle     chan struct{} // closed and replaced when sessions drop to zero
}

// New checks cfg and returns a Client in state Connecting.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tunnel config: %w", err)
	}
	allow, _ := ParseAllowlist(cfg.AllowedTargets)
	c := &Client{
		cfg:      cfg,
		allow:    allow,
		log:      cfg.Logger,
		rand:     cfg.Rand,
		drainCh:  make(chan struct{}),
		sessions: map[string]*relay{},
		idle:     make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	c.status = Status{State: state.Connecting, Since: c.now(), HeartbeatInterval: cfg.DefaultHeartbeatInterval}
	return c, nil
}

func (c *Client) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// Status returns a snapshot of the tunnel's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.status
	st.ActiveSessions = len(c.sessions)
	return st
}

// setState is the one place where the state changes.
func (c *Client) setState(s state.State, reason string, edit func(*Status)) {
	c.mu.Lock()
	changed := c.status.State != s || c.status.Reason != reason
	if c.status.State != s {
		c.status.Since = c.now()
	}
	c.status.State = s
	c.status.Reason = reason
	if edit != nil {
		edit(&c.status)
	}
	st := c.status
	st.ActiveSessions = len(c.sessions)
	c.mu.Unlock()
	if changed {
		c.log.Info("tunnel state", "state", s.String(), "reason", reason)
		if c.cfg.OnStatus != nil {
			c.cfg.OnStatus(st)
		}
	}
}

// Run keeps the tunnel up until ctx ends (returns ctx.Err()), Shutdown
// completes (returns ErrClientClosed) or the control plane refuses the
// identity for good (returns an error wrapping ErrNeedsRecovery; the state
// is then NeedsRecovery). Run must not be called twice at the same time.
func (c *Client) Run(ctx context.Context) error {
	attempt := 0
	for {
		if err := ctx.Err(); err != nil {
			c.setState(state.Stopped, "stopped", nil)
			return err
		}
		if c.isDraining() {
			c.setState(state.Stopped, "shut down", nil)
			return ErrClientClosed
		}
		up, err := c.connectAndServe(ctx)
		var perm *permanentError
		switch {
		case errors.As(err, &perm):
			c.setState(state.NeedsRecovery, err.Error(), nil)
			return fmt.Errorf("%w: %v", ErrNeedsRecovery, err)
		case c.isDraining():
			c.setState(state.Stopped, "shut down", nil)
			return ErrClientClosed
		case ctx.Err() != nil:
			c.setState(state.Stopped, "stopped", nil)
			return ctx.Err()
		}
		if up {
			attempt = 0
		}
		delay := c.cfg.Backoff.Delay(attempt, c.rand)
		attempt++
		reason := "tunnel lost"
		if err != nil {
			reason = err.Error()
		}
		c.log.Warn("tunnel down, retrying", "err", reason, "retry_in", delay)
		next := c.now().Add(delay)
		c.setState(state.Reconnecting, reason, func(s *Status) { s.Attempt = attempt; s.NextRetry = next })
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		case <-c.drainCh:
			t.Stop()
		}
	}
}

func (c *Client) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// connectAndServe dials, says hello and serves the tunnel until it ends.
// up reports whether the tunnel came up (Online) before it ended.
func (c *Client) connectAndServe(ctx context.Context) (up bool, err error) {
	tc, err := c.dialTLS(ctx)
	if err != nil {
		return false, err
	}
	rc := &recordConn{Conn: tc}
	mux, err := transport.Client(rc, transport.Under(tc))
	if err != nil {
		tc.Close()
		return false, fmt.Errorf("starting yamux: %w", err)
	}
	cn := &conn{c: c, mux: mux, raw: rc, acks: make(chan ackMsg, 4), done: make(chan struct{})}
	defer mux.Close()
	ack, err := cn.hello(ctx)
	if err != nil {
		return false, err
	}

	c.mu.Lock()
	c.cur = cn
	draining := c.draining
	c.mu.Unlock()
	interval := ack.HeartbeatInterval
	if interval <= 0 {
		interval = c.cfg.DefaultHeartbeatInterval
	}
	now := c.now()
	c.setState(state.Online, "", func(s *Status) {
		s.ConnectorID = ack.ConnectorID
		s.LastSuccess = now
		s.LastHeartbeat = now
		s.HeartbeatInterval = interval
		s.RTT = 0 // the last tunnel's; a ping sets this one's at once
		s.Attempt = 0
		s.NextRetry = time.Time{}
	})
	if draining { // Shutdown raced with the dial: nothing to drain
		c.mu.Lock()
		c.cur = nil
		c.mu.Unlock()
		return true, nil
	}
	err = cn.serve(ctx, interval)

	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	mux.Close()
	c.endAll(protocol.ReasonConnectorOffline, "tunnel closed")
	return true, err
}

// Shutdown drains the tunnel: the control plane may open no new sessions
// (yamux GoAway and a draining message), sessions in flight may finish
// until ctx ends, then the rest are ended with reason draining, the tunnel
// closes and Run returns ErrClientClosed. Shutdown returns nil when every
// session finished in time, ctx.Err() otherwise.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.ShutdownFor(ctx, protocol.ReasonDraining)
}

// ShutdownFor is Shutdown with the reason the sessions still open when ctx
// ends are given (protocol.ReasonUpdateReboot before an update's reboot).
func (c *Client) ShutdownFor(ctx context.Context, reason protocol.Reason) error {
	c.mu.Lock()
	if !c.draining {
		c.draining = true
		close(c.drainCh)
	}
	cn := c.cur
	c.mu.Unlock()
	c.setState(state.Draining, "shutting down", nil)
	if cn != nil {
		cn.goAway()
	}
	var err error
	for {
		c.mu.Lock()
		n, idle := len(c.sessions), c.idle
		c.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-idle:
			continue
		case <-ctx.Done():
			err = ctx.Err()
			c.endAll(reason, "grace period over")
			// Give the ended sessions a moment to report their end.
			t := time.NewTimer(2 * time.Second)
			select {
			case <-idle:
			case <-t.C:
			}
			t.Stop()
		}
		break
	}
	c.mu.Lock()
	cn = c.cur
	c.mu.Unlock()
	if cn != nil {
		cn.close()
	}
	return err
}

// recordConn remembers the first read error of the TLS connection: when
// the control plane rejects the client certificate, TLS 1.3 delivers the
// alert on the first read, which yamux swallows.
type recordConn struct {
	net.Conn
	mu      sync.Mutex
	readErr error
}

func (r *recordConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if err != nil {
		r.mu.Lock()
		if r.readErr == nil {
			r.readErr = err
		}
		r.mu.Unlock()
	}
	return n, err
}

func (r *recordConn) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readErr
}
