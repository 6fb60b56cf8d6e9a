package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/transport"
)

// Session is one brokered session: a byte stream to a target inside the
// connector's network. It is a net.Conn with half-close (CloseWrite). Read
// returns io.EOF when the session ended normally, and a *SessionEndedError
// when it was cut (connector offline, drained, aborted). A session whose
// end the connector reported before the tunnel closed ended with the
// reported reason, even if the caller reads the end only after the tunnel
// is gone (a draining connector closes it as soon as its last session
// ends). Safe for one reader and one writer at a time, like a net.Conn.
type Session struct {
	ID          string
	ConnectorID string
	Target      string
	Opened      time.Time

	t  *tunnel
	st *yamux.Stream

	up, down atomic.Int64
	last     atomic.Int64 // when data last moved (unix nanos), for shrinkIdle

	mu        sync.Mutex
	readEOF   bool
	wrClosed  bool
	firstSide protocol.Reason // reason by whichever direction finished first
	open      bool            // the connector accepted the session and relays
	// reported is the reason of the connector's session_end report, once
	// it arrived; reportDetail goes with it.
	reported     protocol.Reason
	reportDetail string
	reason       protocol.Reason
	detail       string
	done         chan struct{}
}

var _ net.Conn = (*Session)(nil)

// Dial opens a session to target (host:port) through connector
// connectorID. It fails with an *Error: the connector is not Online
// (ErrConnectorOffline, ErrConnectorDraining) or the connector refused
// (ErrNotAllowed, ErrTargetUnreachable, …), with the connector's reason.
// Resources say which connector reaches them; Dial never reaches a target
// any other way.
func (b *Broker) Dial(ctx context.Context, connectorID, target string) (*Session, error) {
	refuse := func(r protocol.Reason, msg string) error {
		return &Error{ConnectorID: connectorID, Target: target, Reason: r, Message: msg}
	}
	b.mu.Lock()
	t := b.tunnels[connectorID]
	seen, known := b.seen[connectorID]
	b.mu.Unlock()
	if t == nil {
		msg := "connector " + connectorID + " has not connected since the control plane started"
		if known {
			msg = fmt.Sprintf("connector %s is offline since %s (%s)", connectorID, seen.Since.UTC().Format(time.RFC3339), seen.Reason)
		}
		return nil, refuse(protocol.ReasonConnectorOffline, msg)
	}
	t.mu.Lock()
	ended, draining := t.ended, t.draining
	t.mu.Unlock()
	switch {
	case ended:
		return nil, refuse(protocol.ReasonConnectorOffline, "connector "+connectorID+" just went offline")
	case draining:
		return nil, refuse(protocol.ReasonDraining, "connector "+connectorID+" is shutting down and takes no new sessions")
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.OpenTimeout)
	defer cancel()
	st, err := t.mux.OpenStream()
	if err != nil {
		if errors.Is(err, yamux.ErrRemoteGoAway) {
			return nil, refuse(protocol.ReasonDraining, "connector "+connectorID+" is shutting down and takes no new sessions")
		}
		return nil, refuse(protocol.ReasonConnectorOffline, "opening a stream to connector "+connectorID+": "+err.Error())
	}
	s := &Session{ID: b.newID(), ConnectorID: connectorID, Target: target, Opened: b.now(), t: t, st: st, done: make(chan struct{})}
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		st.Close()
		return nil, refuse(protocol.ReasonConnectorOffline, "connector "+connectorID+" just went offline")
	}
	t.sessions[s.ID] = s
	t.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Unix(1, 0)) })
	reply, err := s.handshake()
	stopped := stop()
	if err != nil || !reply.OK {
		st.Close()
		t.drop(s)
		switch {
		case err == nil && reply.Error != nil:
			return nil, refuse(reply.Error.Code, reply.Error.Message)
		case err == nil:
			return nil, refuse(protocol.ReasonBadRequest, "connector answered without ok or error")
		case !stopped || ctx.Err() != nil:
			return nil, refuse(protocol.ReasonDialTimeout, "no answer from connector "+connectorID+" in time: "+context.Cause(ctx).Error())
		case t.isEnded():
			return nil, refuse(protocol.ReasonConnectorOffline, "connector "+connectorID+" went offline")
		case t.isDraining() || errors.Is(err, yamux.ErrConnectionReset):
			// A connector that sent GoAway resets streams that raced it.
			return nil, refuse(protocol.ReasonDraining, "connector "+connectorID+" is shutting down and takes no new sessions")
		}
		return nil, refuse(protocol.ReasonConnectorOffline, "session handshake with connector "+connectorID+": "+err.Error())
	}
	st.SetDeadline(time.Time{})
	s.mu.Lock()
	s.open = true
	s.mu.Unlock()
	return s, nil
}

func (s *Session) handshake() (*protocol.SessionReply, error) {
	if err := protocol.WriteTunnelFrame(s.st, &protocol.SessionHeader{SessionID: s.ID, Target: s.Target}); err != nil {
		return nil, err
	}
	var r protocol.SessionReply
	if err := protocol.ReadTunnelFrame(s.st, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (t *tunnel) isEnded() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ended
}

func (t *tunnel) isDraining() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.draining
}

// drop forgets a session that never opened.
func (t *tunnel) drop(s *Session) {
	t.mu.Lock()
	delete(t.sessions, s.ID)
	t.mu.Unlock()
}

// Done is closed when the session has ended; Reason then says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Reason returns why the session ended (empty while it runs) and detail.
func (s *Session) Reason() (protocol.Reason, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason, s.detail
}

// normalEnd reports whether r ends a session without cutting it.
func normalEnd(r protocol.Reason) bool {
	return r == protocol.ReasonTargetClosed || r == protocol.ReasonClientClosed
}

// ended returns the error for a cut session, nil if it is not cut.
func (s *Session) ended() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == "" || normalEnd(s.reason) {
		return nil
	}
	return &SessionEndedError{SessionID: s.ID, Reason: s.reason, Detail: s.detail}
}

// connectorReport records the connector's session_end report for a
// session still in flight here. The connector sends it once its relay is
// over, and before it closes the tunnel on drain, so it is the
// authoritative end: if the tunnel closes before the caller has read the
// end, offline ends the session with this reason, not connector_offline.
func (t *tunnel) connectorReport(e *protocol.SessionEnd) {
	if e.Reason == "" {
		return
	}
	t.mu.Lock()
	s := t.sessions[e.SessionID]
	t.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.reason == "" && s.reported == "" {
		s.reported, s.reportDetail = e.Reason, e.Detail
	}
	s.mu.Unlock()
}

// endAtTunnelLoss ends the session when its tunnel is gone: with the
// reason the connector reported if the report came first (the session had
// already ended there), else as cut by the loss.
func (s *Session) endAtTunnelLoss(why string) {
	s.mu.Lock()
	r, d := s.reported, s.reportDetail
	if !s.open {
		r = "" // still in Dial: a report here is a refusal, Dial returns it
	}
	s.mu.Unlock()
	if r == "" {
		r, d = protocol.ReasonConnectorOffline, "connector offline: "+why
	}
	s.finish(r, d)
}

// Read reads bytes from the target.
func (s *Session) Read(p []byte) (int, error) {
	n, err := s.st.Read(p)
	s.down.Add(int64(n))
	if n > 0 {
		s.last.Store(time.Now().UnixNano())
	}
	if err == nil {
		return n, nil
	}
	if s.t.mux.IsClosed() {
		// yamux reports a dead tunnel as EOF, the same as the target's
		// end: wait for offline to settle which it was (the connector's
		// report, read before offline runs, says the session had ended).
		<-s.t.done
	}
	if eerr := s.ended(); eerr != nil {
		return n, eerr
	}
	if err == io.EOF {
		s.side(func() { s.readEOF = true }, protocol.ReasonTargetClosed)
	}
	return n, err
}

// maxFrame caps one yamux data frame, so a large Write does not hold the
// tunnel's send loop (and the other sessions' frames) for long.
const maxFrame = transport.MaxDataFrame

// Write writes bytes to the target.
func (s *Session) Write(p []byte) (int, error) {
	var n int
	var err error
	for len(p) > 0 && err == nil {
		k := min(len(p), maxFrame)
		var w int
		w, err = s.st.Write(p[:k])
		n += w
		p = p[k:]
	}
	s.up.Add(int64(n))
	if n > 0 {
		s.last.Store(time.Now().UnixNano())
	}
	if err != nil {
		if s.t.mux.IsClosed() {
			<-s.t.done
		}
		if eerr := s.ended(); eerr != nil {
			return n, eerr
		}
	}
	return n, err
}

// CloseWrite half-closes: the target reads EOF, its answer can still be read.
func (s *Session) CloseWrite() error {
	// Our side finished first: record that before the FIN leaves, or the
	// target's answering EOF can be read (and win) before Close returns.
	s.mu.Lock()
	if s.firstSide == "" {
		s.firstSide = protocol.ReasonClientClosed
	}
	s.mu.Unlock()
	err := s.st.Close()
	s.side(func() { s.wrClosed = true }, protocol.ReasonClientClosed)
	return err
}

// side records that one direction finished; when both have, the session
// ends with the reason of the first.
func (s *Session) side(mark func(), r protocol.Reason) {
	s.mu.Lock()
	mark()
	if s.firstSide == "" {
		s.firstSide = r
	}
	both, first := s.readEOF && s.wrClosed, s.firstSide
	s.mu.Unlock()
	if both {
		s.finish(first, "")
	}
}

// Close ends the session. If the target still had data to send, the
// connector is told to abort the session; the reason is client_closed.
func (s *Session) Close() error {
	s.mu.Lock()
	complete := s.readEOF && s.wrClosed
	s.mu.Unlock()
	if !complete && !s.t.isEnded() {
		s.t.send(protocol.TunnelMessage{Type: protocol.MsgSessionAbort,
			Abort: &protocol.SessionAbort{SessionID: s.ID, Reason: protocol.ReasonClientClosed}})
	}
	s.finish(protocol.ReasonClientClosed, "")
	return nil
}

// finish ends the session once with reason.
func (s *Session) finish(r protocol.Reason, detail string) {
	s.mu.Lock()
	if s.reason != "" {
		s.mu.Unlock()
		return
	}
	s.reason, s.detail = r, detail
	s.mu.Unlock()
	s.st.Close()
	s.t.drop(s)
	close(s.done)
	b := s.t.b
	b.log.Debug("session end", "session", s.ID, "connector", s.ConnectorID, "reason", r, "detail", detail)
	if b.cfg.OnSessionEnd != nil {
		b.cfg.OnSessionEnd(SessionEnd{SessionID: s.ID, ConnectorID: s.ConnectorID, Target: s.Target, By: "control_plane",
			Reason: string(r), Detail: detail, BytesUp: s.up.Load(), BytesDown: s.down.Load()})
	}
}

// BytesUp and BytesDown count what went to and came from the target.
func (s *Session) BytesUp() int64   { return s.up.Load() }
func (s *Session) BytesDown() int64 { return s.down.Load() }

// LocalAddr and RemoteAddr are the tunnel's addresses.
func (s *Session) LocalAddr() net.Addr  { return s.t.conn.LocalAddr() }
func (s *Session) RemoteAddr() net.Addr { return s.t.conn.RemoteAddr() }

// SetDeadline, SetReadDeadline and SetWriteDeadline work as on a net.Conn.
func (s *Session) SetDeadline(d time.Time) error      { return s.st.SetDeadline(d) }
func (s *Session) SetReadDeadline(d time.Time) error  { return s.st.SetReadDeadline(d) }
func (s *Session) SetWriteDeadline(d time.Time) error { return s.st.SetWriteDeadline(d) }
