package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// streamAnswerTimeout bounds the wait for the control plane's answers on a
// typed stream: the first comes at once, the last after it stored the
// payload.
const streamAnswerTimeout = 60 * time.Second

// SendStream hands h.Size bytes from body to the control plane on a typed
// connector stream (protocol.StreamHeader; today support bundles) and
// returns the ID the control plane stored them under. It returns an error
// wrapping ErrTunnelDown when the tunnel is not up, a
// *protocol.StreamError when the control plane refuses (unknown type, too
// large, busy, incomplete), and gives up when ctx ends. Safe to call while
// sessions run; the payload shares the tunnel with them.
func (c *Client) SendStream(ctx context.Context, h protocol.StreamHeader, body io.Reader) (string, error) {
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	if cn == nil {
		return "", ErrTunnelDown
	}
	st, err := cn.mux.OpenStream()
	if err != nil {
		return "", fmt.Errorf("%w: opening a stream: %v", ErrTunnelDown, err)
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() {
		st.Close()
		st.SetDeadline(time.Unix(1, 0)) // wake a blocked read or write
	})
	defer stop()
	fail := func(what string, err error) (string, error) {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%s: %w", what, err)
	}

	if err := protocol.WriteTunnelFrame(st, &h); err != nil {
		return fail("sending the stream header", err)
	}
	if err := readStreamReply(st); err != nil {
		return fail("the control plane's answer", err)
	}
	n, err := io.CopyN(st, body, h.Size)
	if err != nil {
		return fail(fmt.Sprintf("sending %s (%d of %d bytes sent)", h.Type, n, h.Size), err)
	}
	if err := st.Close(); err != nil { // half-close: the payload is complete
		return fail("closing the stream", err)
	}
	st.SetReadDeadline(time.Now().Add(streamAnswerTimeout))
	var r protocol.StreamReply
	if err := protocol.ReadTunnelFrame(st, &r); err != nil {
		return fail("waiting for the control plane to store it", err)
	}
	if r.Error != nil {
		return "", r.Error
	}
	if !r.OK || r.ID == "" {
		return "", errors.New("the control plane answered without an ID")
	}
	return r.ID, nil
}

// readStreamReply reads the first answer to a stream header: nil to go
// on, the typed refusal otherwise.
func readStreamReply(r interface {
	io.Reader
	SetReadDeadline(time.Time) error
}) error {
	r.SetReadDeadline(time.Now().Add(streamAnswerTimeout))
	defer r.SetReadDeadline(time.Time{})
	var rep protocol.StreamReply
	if err := protocol.ReadTunnelFrame(r, &rep); err != nil {
		return err
	}
	if rep.Error != nil {
		return rep.Error
	}
	if !rep.OK {
		return errors.New("the control plane neither accepted nor refused the stream")
	}
	return nil
}
