package lab

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/lab/broker"
)

// Sessions for `vaultpam-lab connect` go over the admin socket:
//
//	→ POST /connect?resource=N HTTP/1.1
//	← 200 and then frames, or an error status with a ConnectError body
//
// After the 200 the client sends raw bytes (half-close with CloseWrite)
// and the server sends frames: 'D' + uint32 length + data, and once at the
// end 'E' + uint32 length + JSON ConnectEnd, so the reason a session ended
// (connector offline, draining, …) reaches the caller.

// ConnectError is the body of a refused connect.
type ConnectError struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"` // a protocol.Reason, when the broker or connector refused
}

// ConnectEnd says how a session ended.
type ConnectEnd struct {
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// Normal reports whether the session ended by an ordinary close.
func (e ConnectEnd) Normal() bool {
	return e.Reason == string(protocol.ReasonTargetClosed) || e.Reason == string(protocol.ReasonClientClosed)
}

// SessionEnded is returned by ConnectStream.Read when a session was cut.
type SessionEnded struct{ ConnectEnd }

func (e *SessionEnded) Error() string {
	if e.Detail == "" {
		return "session ended: " + e.Reason
	}
	return "session ended: " + e.Reason + ": " + e.Detail
}

// Refused is returned by AdminClient.Connect when no session was opened.
type Refused struct{ ConnectError }

func (e *Refused) Error() string { return e.ConnectError.Error }

func (l *ControlPlane) serveConnect(w http.ResponseWriter, r *http.Request) {
	sess, err := l.Connect(r.Context(), r.URL.Query().Get("resource"))
	if err != nil {
		ce := ConnectError{Error: err.Error()}
		var be *broker.Error
		if errors.As(err, &be) {
			ce.Reason = string(be.Reason)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(ce)
		return
	}
	defer sess.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	brw.Flush()
	go func() {
		io.Copy(sess, brw.Reader)
		sess.CloseWrite()
	}()
	buf := make([]byte, 32<<10)
	end := ConnectEnd{Reason: string(protocol.ReasonTargetClosed)}
	for {
		n, err := sess.Read(buf)
		if n > 0 {
			if werr := writeFrame(conn, 'D', buf[:n]); werr != nil {
				return // caller went away; closing sess ends the session
			}
		}
		if err != nil {
			var se *broker.SessionEndedError
			switch {
			case errors.Is(err, io.EOF):
				// The connector's session-end report, when it came before
				// the end of stream, says who ended it; else the target did.
				if r, d := sess.Reason(); r != "" {
					end = ConnectEnd{Reason: string(r), Detail: d}
				}
			case errors.As(err, &se):
				end = ConnectEnd{Reason: string(se.Reason), Detail: se.Detail}
			default:
				end = ConnectEnd{Reason: string(protocol.ReasonError), Detail: err.Error()}
			}
			break
		}
	}
	b, _ := json.Marshal(end)
	writeFrame(conn, 'E', b)
}

func writeFrame(w io.Writer, typ byte, p []byte) error {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(p)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// ConnectStream is a session opened through the admin socket. Read
// returns io.EOF after a normal end and *SessionEnded after a cut one.
type ConnectStream struct {
	conn    net.Conn
	br      *bufio.Reader
	mu      sync.Mutex
	left    int // bytes of the current data frame not read yet
	end     *ConnectEnd
	readErr error
}

// Connect opens a session to resource through the running serve.
func (c *AdminClient) Connect(ctx context.Context, resource string) (*ConnectStream, error) {
	conn, err := c.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("lab server not answering on %s: %w", c.Socket, err)
	}
	fmt.Fprintf(conn, "POST /connect?resource=%s HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\n\r\n", url.QueryEscape(resource))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading lab answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var ce ConnectError
		json.NewDecoder(resp.Body).Decode(&ce)
		conn.Close()
		if ce.Error == "" {
			ce.Error = "lab answered " + resp.Status
		}
		return nil, &Refused{ce}
	}
	return &ConnectStream{conn: conn, br: br}, nil
}

// Read implements io.Reader.
func (s *ConnectStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.left == 0 {
		if s.readErr != nil {
			return 0, s.readErr
		}
		var h [5]byte
		if _, err := io.ReadFull(s.br, h[:]); err != nil {
			s.readErr = &SessionEnded{ConnectEnd{Reason: string(protocol.ReasonError), Detail: "lab connection lost: " + err.Error()}}
			return 0, s.readErr
		}
		n := int(binary.BigEndian.Uint32(h[1:]))
		switch h[0] {
		case 'D':
			s.left = n
		case 'E':
			b := make([]byte, n)
			io.ReadFull(s.br, b)
			var e ConnectEnd
			json.Unmarshal(b, &e)
			s.end = &e
			if e.Normal() {
				s.readErr = io.EOF
			} else {
				s.readErr = &SessionEnded{e}
			}
		default:
			s.readErr = fmt.Errorf("lab sent an unknown frame %q", h[0])
		}
	}
	if len(p) > s.left {
		p = p[:s.left]
	}
	n, err := s.br.Read(p)
	s.left -= n
	if err != nil {
		s.readErr = err
	}
	return n, nil
}

// Write implements io.Writer (towards the target).
func (s *ConnectStream) Write(p []byte) (int, error) { return s.conn.Write(p) }

// CloseWrite half-closes towards the target.
func (s *ConnectStream) CloseWrite() error {
	if cw, ok := s.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("cannot half-close")
}

// Close ends the session.
func (s *ConnectStream) Close() error { return s.conn.Close() }

// End returns how the session ended, nil while it runs.
func (s *ConnectStream) End() *ConnectEnd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end
}
