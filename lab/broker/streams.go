package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/transport"
)

// SupportBundle describes a support bundle a connector uploads.
type SupportBundle struct {
	ConnectorID string
	Name        string // as the connector named it; a file name for people, never a path to trust
	Size        int64
}

// acceptStreams serves the streams the connector opens after the control
// stream: typed connector streams (protocol.StreamHeader). Only known
// types are taken, within their size limit and one upload of a type at a
// time per connector; everything else is answered with a typed refusal
// and closed. Sessions are opened by the control plane only.
func (t *tunnel) acceptStreams(ctx context.Context) {
	for {
		st, err := t.mux.AcceptStream()
		if err != nil {
			return
		}
		go t.serveStream(ctx, st)
	}
}

// serveStream handles one connector stream.
func (t *tunnel) serveStream(ctx context.Context, st *yamux.Stream) {
	b := t.b
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(b.cfg.HelloTimeout))
	var h protocol.StreamHeader
	if err := protocol.ReadTunnelFrame(st, &h); err != nil {
		t.streamReply(st, h, &protocol.StreamError{Code: protocol.StreamBadHeader, Message: "the stream header does not read: " + err.Error()})
		return
	}
	st.SetReadDeadline(time.Time{})
	if e := b.checkStream(h); e != nil {
		t.streamReply(st, h, e)
		return
	}
	key := t.id + "/" + h.Type
	b.mu.Lock()
	busy := b.uploading[key]
	if !busy {
		b.uploading[key] = true
	}
	b.mu.Unlock()
	if busy {
		t.streamReply(st, h, &protocol.StreamError{Code: protocol.StreamBusy, Message: "an upload of a " + h.Type + " from this connector is under way; try again when it is done"})
		return
	}
	// The upload counts as under way until its answer is decided: a
	// connector that starts the next one on reading the answer must not
	// find this one still busy.
	var once sync.Once
	done := func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.uploading, key)
			b.mu.Unlock()
		})
	}
	defer done()
	if !t.streamReply(st, h, nil) {
		return
	}
	body := &exactReader{r: &idleReader{st: st, idle: b.cfg.StreamIdleTimeout}, left: h.Size}
	id, err := b.cfg.OnSupportBundle(ctx, SupportBundle{ConnectorID: t.id, Name: h.Name, Size: h.Size}, body)
	done()
	if err == nil && body.left != 0 {
		err = errors.New("it stopped reading before the end")
	}
	if err != nil {
		var se *protocol.StreamError
		switch {
		case errors.As(err, &se):
		case body.short || errors.Is(err, io.ErrUnexpectedEOF):
			se = &protocol.StreamError{Code: protocol.StreamIncomplete, Message: fmt.Sprintf("the stream ended after %d of %d bytes", h.Size-body.left, h.Size)}
		default:
			se = &protocol.StreamError{Code: protocol.StreamNotTaken, Message: "the control plane could not store the bundle: " + err.Error()}
		}
		t.streamReply(st, h, se)
		return
	}
	b.log.Info("support bundle received", "connector", t.id, "id", id, "size", h.Size)
	st.SetWriteDeadline(time.Now().Add(transport.WriteTimeout))
	protocol.WriteTunnelFrame(st, &protocol.StreamReply{OK: true, ID: id})
}

// checkStream refuses unknown types and headers outside the limits.
func (b *Broker) checkStream(h protocol.StreamHeader) *protocol.StreamError {
	switch {
	case h.Type != protocol.StreamSupportBundle:
		return &protocol.StreamError{Code: protocol.StreamUnknownType, Message: fmt.Sprintf("this control plane takes no %q streams", h.Type)}
	case b.cfg.OnSupportBundle == nil:
		return &protocol.StreamError{Code: protocol.StreamUnknownType, Message: "this control plane takes no support bundles"}
	case h.Name == "" || len(h.Name) > 255:
		return &protocol.StreamError{Code: protocol.StreamBadHeader, Message: "a support bundle needs a name of 1 to 255 bytes"}
	case h.Size <= 0:
		return &protocol.StreamError{Code: protocol.StreamBadHeader, Message: fmt.Sprintf("size %d: a support bundle has at least one byte", h.Size)}
	case h.Size > b.cfg.MaxSupportBundle:
		return &protocol.StreamError{Code: protocol.StreamTooLarge, Message: fmt.Sprintf("a support bundle of %d bytes exceeds the limit of %d", h.Size, b.cfg.MaxSupportBundle)}
	}
	return nil
}

// streamReply answers a stream header: OK when e is nil, the refusal
// otherwise (logged). It reports whether the answer went out.
func (t *tunnel) streamReply(st *yamux.Stream, h protocol.StreamHeader, e *protocol.StreamError) bool {
	if e != nil {
		t.b.log.Warn("connector stream refused", "connector", t.id, "type", h.Type, "size", h.Size, "code", e.Code, "reason", e.Message)
	}
	st.SetWriteDeadline(time.Now().Add(transport.WriteTimeout))
	defer st.SetWriteDeadline(time.Time{})
	return protocol.WriteTunnelFrame(st, &protocol.StreamReply{OK: e == nil, Error: e}) == nil
}

// exactReader reads exactly left bytes from r: io.EOF after them,
// io.ErrUnexpectedEOF when r ends before.
type exactReader struct {
	r     io.Reader
	left  int64
	short bool
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		e.short = true
		return n, io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		e.short = true
		return n, fmt.Errorf("%w: %v", io.ErrUnexpectedEOF, err)
	}
	if e.left == 0 {
		return n, io.EOF
	}
	return n, nil
}

// idleReader reads from a stream, failing a read that waits longer than
// idle for the next byte.
type idleReader struct {
	st   *yamux.Stream
	idle time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.st.SetReadDeadline(time.Now().Add(r.idle))
	return r.st.Read(p)
}
