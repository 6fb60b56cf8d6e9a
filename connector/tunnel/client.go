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

	"github.com/vaultpam/appliance/connector/allowlist"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tlsreason"
	"github.com/vaultpam/appliance/connector/transport"
)

// Client keeps the connector's tunnel to the control plane up. Create it
// with New, run it with Run, stop it gracefully with Shutdown or at once by
// cancelling Run's context. Its methods are safe for concurrent use.
type Client struct {
	cfg      Config
	allow    *allowlist.List
	log      *slog.Logger
	rand     io.Reader
	counters *Counters

	certNotAfter  atomic.Int64 // unix nanos of the current certificate
	certNotBefore atomic.Int64
	certSHA256    atomicString // protocol.CertFingerprint of the current certificate

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
	allow, _ := allowlist.Parse(cfg.AllowedTargets)
	c := &Client{
		cfg:      cfg,
		allow:    allow,
		log:      cfg.Logger,
		rand:     cfg.Rand,
		counters: cfg.Counters,
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
	if c.counters == nil {
		c.counters = &Counters{}
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

// Counters returns the counters the Client adds to (Config.Counters or
// its own).
func (c *Client) Counters() *Counters { return c.counters }

// setClock records a clock offset estimate.
func (c *Client) setClock(offset time.Duration) {
	c.mu.Lock()
	c.status.ClockOffset, c.status.ClockMeasured = offset, c.now()
	c.mu.Unlock()
}

// clockOffset returns the last estimate; ok is false before the first.
func (c *Client) clockOffset() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status.ClockOffset, !c.status.ClockMeasured.IsZero()
}

// estimateOffset is the control plane's clock minus ours at the midpoint
// of a round trip of rtt that ended now (by our wall clock).
func (c *Client) estimateOffset(server time.Time, rtt time.Duration) time.Duration {
	return server.Sub(c.now().Add(-rtt / 2))
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
	c.status.Hint = ""
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
		} else {
			c.counters.connectFailures.Add(1)
		}
		delay := c.cfg.Backoff.Delay(attempt, c.rand)
		attempt++
		reason, hint := "tunnel lost", ""
		if err != nil {
			reason = err.Error()
		}
		var te *tlsreason.Error
		if errors.As(err, &te) {
			hint = te.Hint
		}
		c.log.Warn("tunnel down, retrying", "err", reason, "retry_in", delay)
		next := c.now().Add(delay)
		c.setState(state.Reconnecting, reason, func(s *Status) { s.Attempt = attempt; s.NextRetry = next; s.Hint = hint })
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
	c.counters.tunnelsUp.Add(1)
	now := c.now()
	c.setState(state.Online, "", func(s *Status) {
		s.ConnectorID = ack.ConnectorID
		s.SupportRecipient = ack.SupportRecipient
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

// reportGrace bounds the wait for aborted sessions to report their end
// when a drain's grace period is over.
const reportGrace = 10 * time.Second

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
			// Give the ended sessions time to report their end before the
			// tunnel closes: they were aborted, so this is quick, but a
			// report lost to the close would leave the control plane
			// calling them connector_offline. The bound only guards a
			// stuck relay (seen taking over 2 s on a loaded 2-core machine).
			t := time.NewTimer(reportGrace)
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

// atomicString is a string safe for concurrent use.
type atomicString struct{ v atomic.Value }

func (a *atomicString) Load() string {
	s, _ := a.v.Load().(string)
	return s
}

func (a *atomicString) Store(s string) { a.v.Store(s) }
