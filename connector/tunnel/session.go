package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/transport"
)

// accept serves the session streams the control plane opens.
func (cn *conn) accept(ctx context.Context) error {
	for {
		st, err := cn.mux.AcceptStream()
		if err != nil {
			return fmt.Errorf("accepting sessions: %w", err)
		}
		go cn.serveSession(ctx, st)
	}
}

// relay is one session in flight.
type relay struct {
	id     string
	st     *yamux.Stream
	target net.Conn

	// up copies the control plane's bytes to the target (reading st),
	// down the target's to the control plane.
	up, down pipe

	// mu orders the read deadlines that abort and the idle sweep set on
	// st and target against the copy loops clearing them.
	mu      sync.Mutex
	aborted bool

	reasonOnce sync.Once
	reason     protocol.Reason
	detail     string
}

// pipe is one direction of a relay.
type pipe struct {
	n     atomic.Int64 // bytes moved
	last  atomic.Int64 // when data last moved (unix nanos)
	large atomic.Bool  // the copy loop holds a pooled large buffer
	// release asks the copy loop, blocked in a read with the large buffer,
	// to give it back: the idle sweep sets it with a past read deadline.
	release atomic.Bool
	// total is the process's count for this direction (Counters), added
	// to as bytes move.
	total *atomic.Int64
}

// end records why the session ended; the first reason wins.
func (r *relay) end(reason protocol.Reason, detail string) {
	r.reasonOnce.Do(func() { r.reason, r.detail = reason, detail })
}

// abort ends the session at once.
func (r *relay) abort(reason protocol.Reason, detail string) {
	r.end(reason, detail)
	r.mu.Lock()
	r.aborted = true
	r.mu.Unlock()
	r.target.Close()
	r.st.Close()
	r.st.SetReadDeadline(time.Unix(1, 0)) // wake the reader; yamux's Close does not
}

// idle gives back what an idle session holds: yamux's receive buffer (kept
// at its high-water mark) and, by waking the copy loops blocked in a read
// on a large buffer, the large buffers. cutoff is unix nanos: a direction
// that moved data since is left alone.
func (r *relay) idle(cutoff int64) {
	if r.up.last.Load() < cutoff {
		r.st.Shrink()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aborted {
		return
	}
	for _, d := range []struct {
		p   *pipe
		src interface{ SetReadDeadline(time.Time) error }
	}{{&r.up, r.st}, {&r.down, r.target}} {
		if d.p.large.Load() && d.p.last.Load() < cutoff {
			d.p.release.Store(true)
			d.src.SetReadDeadline(time.Unix(1, 0))
		}
	}
}

// released reports whether a read error is the idle sweep's wake-up (not
// an abort, not a real timeout) and, if so, clears the deadline so the
// copy loop reads on, on its small buffer.
func (r *relay) released(p *pipe, src interface{ SetReadDeadline(time.Time) error }, err error) bool {
	var ne net.Error
	if !p.release.Load() || !errors.As(err, &ne) || !ne.Timeout() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aborted {
		return false
	}
	p.release.Store(false)
	src.SetReadDeadline(time.Time{})
	return true
}

func (c *Client) activeSessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

// register adds r to the sessions in flight; false if draining or the ID
// is taken.
func (c *Client) register(r *relay) (protocol.Reason, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return protocol.ReasonDraining, false
	}
	if _, dup := c.sessions[r.id]; dup {
		return protocol.ReasonBadRequest, false
	}
	c.sessions[r.id] = r
	return "", true
}

func (c *Client) unregister(r *relay) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[r.id] == r {
		delete(c.sessions, r.id)
		if len(c.sessions) == 0 {
			close(c.idle)
			c.idle = make(chan struct{})
		}
	}
}

// abort ends one session on the control plane's request.
func (c *Client) abort(id string, reason protocol.Reason) {
	c.mu.Lock()
	r := c.sessions[id]
	c.mu.Unlock()
	if r != nil {
		if reason == "" {
			reason = protocol.ReasonAborted
		}
		r.abort(reason, "aborted by the control plane")
	}
}

// endAll ends every session in flight with reason.
func (c *Client) endAll(reason protocol.Reason, detail string) {
	c.mu.Lock()
	rs := make([]*relay, 0, len(c.sessions))
	for _, r := range c.sessions {
		rs = append(rs, r)
	}
	c.mu.Unlock()
	for _, r := range rs {
		r.abort(reason, detail)
	}
}

// refuse answers a session header with a typed error and closes the stream.
func (cn *conn) refuse(st *yamux.Stream, id string, e *protocol.SessionError) {
	st.SetWriteDeadline(time.Now().Add(transport.WriteTimeout))
	protocol.WriteTunnelFrame(st, &protocol.SessionReply{Error: e})
	st.Close()
	cn.c.log.Info("session refused", "session", id, "reason", e.Code, "detail", e.Message)
	cn.report(&protocol.SessionEnd{SessionID: id, Reason: e.Code, Detail: e.Message})
}

// report tells the control plane how a session ended (best effort) and
// counts the end.
func (cn *conn) report(e *protocol.SessionEnd) {
	cn.c.counters.sessionEnded(e.Reason)
	if err := cn.send(protocol.TunnelMessage{Type: protocol.MsgSessionEnd, SessionEnd: e}); err != nil {
		cn.c.log.Debug("reporting session end", "session", e.SessionID, "err", err)
	}
}

// serveSession reads a session header, checks and dials the target,
// answers, and relays until both directions are done.
func (cn *conn) serveSession(ctx context.Context, st *yamux.Stream) {
	c := cn.c
	st.SetReadDeadline(time.Now().Add(c.cfg.DialTimeout))
	var h protocol.SessionHeader
	if err := protocol.ReadTunnelFrame(st, &h); err != nil {
		st.Close()
		c.log.Warn("reading session header", "err", err)
		return
	}
	st.SetReadDeadline(time.Time{})
	if h.SessionID == "" {
		cn.refuse(st, h.SessionID, &protocol.SessionError{Code: protocol.ReasonBadRequest, Message: "session header without a session ID"})
		return
	}
	if c.isDraining() {
		cn.refuse(st, h.SessionID, &protocol.SessionError{Code: protocol.ReasonDraining, Message: "connector is draining and takes no new sessions"})
		return
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	target, err := c.dialTarget(dctx, h.Target)
	cancel()
	if err != nil {
		var se *protocol.SessionError
		if !errors.As(err, &se) {
			se = &protocol.SessionError{Code: protocol.ReasonDialFailed, Message: err.Error()}
		}
		cn.refuse(st, h.SessionID, se)
		return
	}
	r := &relay{id: h.SessionID, st: st, target: target}
	r.up.total, r.down.total = &c.counters.bytesUp, &c.counters.bytesDown
	if reason, ok := c.register(r); !ok {
		target.Close()
		msg := "connector is draining and takes no new sessions"
		if reason == protocol.ReasonBadRequest {
			msg = "session ID already in use"
		}
		cn.refuse(st, h.SessionID, &protocol.SessionError{Code: reason, Message: msg})
		return
	}
	// Unregister only after the session_end report below went out: a
	// draining Shutdown closes the tunnel as soon as no session is left,
	// and the control plane takes a report that arrived before the close
	// as the session's end (else it counts the session as cut by the
	// tunnel loss, connector_offline).
	defer c.unregister(r)
	st.SetWriteDeadline(time.Now().Add(transport.WriteTimeout))
	if err := protocol.WriteTunnelFrame(st, &protocol.SessionReply{OK: true}); err != nil {
		target.Close()
		st.Close()
		return
	}
	st.SetWriteDeadline(time.Time{})
	c.log.Debug("session open", "session", h.SessionID, "target", h.Target)
	cn.relay(r)
	c.log.Debug("session end", "session", h.SessionID, "reason", r.reason)
	// report returns once yamux has written the frame to the connection
	// (or given up), so the report precedes a close of the tunnel.
	cn.report(&protocol.SessionEnd{SessionID: r.id, Reason: r.reason, Detail: r.detail, BytesUp: r.up.n.Load(), BytesDown: r.down.n.Load()})
}

// relay copies both ways with half-close: a direction that reaches EOF
// closes the other side's write half, the session ends when both are done.
// The first direction to finish names the reason.
func (cn *conn) relay(r *relay) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := r.copy(&r.up, r.target, r.st)
		switch {
		case err == nil && cn.mux.IsClosed():
			r.end(protocol.ReasonConnectorOffline, "tunnel closed")
			r.target.Close()
		case err == nil:
			r.end(protocol.ReasonClientClosed, "")
			closeWrite(r.target)
		default:
			r.end(protocol.ReasonError, err.Error())
			r.target.Close()
		}
	}()
	_, err := r.copy(&r.down, r.st, r.target)
	if err == nil {
		r.end(protocol.ReasonTargetClosed, "")
	} else {
		r.end(protocol.ReasonError, err.Error())
	}
	r.st.Close() // FIN: the control plane's reader sees EOF
	<-done
	r.target.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// dialTarget checks target against allowed_targets and dials the checked
// addresses in order.
func (c *Client) dialTarget(ctx context.Context, target string) (net.Conn, error) {
	addrs, err := c.allow.Resolve(ctx, c.cfg.Resolver, c.cfg.LocalAddrs, target)
	if err != nil {
		return nil, err
	}
	dial := c.cfg.DialTarget
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	var errs []error
	for _, ap := range addrs {
		conn, err := dial(ctx, "tcp", ap.String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	code := protocol.ReasonDialFailed
	if ctx.Err() != nil {
		code = protocol.ReasonDialTimeout
	}
	return nil, &protocol.SessionError{Code: code, Message: fmt.Sprintf("dialling %s (%s): %v", target, fmtAddrs(addrs), errors.Join(errs...))}
}

func fmtAddrs(as []netip.AddrPort) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += ", "
		}
		s += a.String()
	}
	return s
}

// Copy buffers. An idle session blocks in Read holding only its small
// buffer; a session moving data switches to a pooled large one and gives
// it back once reads get small again, or when the idle sweep finds it
// idle (relay.idle), so 1,000 idle sessions cost little memory and a bulk
// stream moves a whole frame per read: one write system call to the
// target per transport.MaxDataFrame, and frames that size back through
// the tunnel.
const (
	smallBuf = 2 << 10
	largeBuf = transport.MaxDataFrame
)

var largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// readDeadliner is a reader the idle sweep can wake (net.Conn, yamux.Stream).
type readDeadliner interface {
	io.Reader
	SetReadDeadline(time.Time) error
}

// copy copies src to dst until EOF (nil error) or an error, counting in p.
func (r *relay) copy(p *pipe, dst io.Writer, src readDeadliner) (int64, error) {
	small := make([]byte, smallBuf)
	buf := small
	var large *[]byte
	giveBack := func() {
		if large != nil {
			p.large.Store(false)
			largePool.Put(large)
			large, buf = nil, small
		}
	}
	defer giveBack()
	var total int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			total += int64(nw)
			p.n.Add(int64(nw))
			p.total.Add(int64(nw))
			p.last.Store(time.Now().UnixNano())
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			if nr == 0 && r.released(p, src, rerr) {
				giveBack()
				continue
			}
			return total, rerr
		}
		switch {
		case large == nil && nr == len(buf):
			large = largePool.Get().(*[]byte)
			buf = *large
			p.large.Store(true)
		case large != nil && nr < smallBuf:
			giveBack()
		}
	}
}

// shrinkIdle gives back the buffers of sessions that moved no data for
// idle (relay.idle): yamux keeps a stream's receive buffer at its
// high-water mark, which for a session that once moved bulk data can be
// hundreds of KiB, and a copy loop blocked on a large buffer holds it.
func (c *Client) shrinkIdle(idle time.Duration) {
	cutoff := time.Now().Add(-idle).UnixNano()
	c.mu.Lock()
	rs := make([]*relay, 0, len(c.sessions))
	for _, r := range c.sessions {
		rs = append(rs, r)
	}
	c.mu.Unlock()
	for _, r := range rs {
		r.idle(cutoff)
	}
}
