package protocol

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxMessageFrame bounds one frame on the control stream or a session
// header: a certificate chain fits easily, a hostile peer cannot make the
// other side allocate much.
const MaxMessageFrame = 64 << 10

// Errors of ReadTunnelFrame, for errors.Is: a frame whose length prefix
// exceeds MaxMessageFrame (its body is left unread) and a body that is not
// the expected JSON.
var (
	ErrFrameTooLarge = errors.New("tunnel frame too large")
	ErrFrameDecode   = errors.New("tunnel frame does not decode")
)

// WriteTunnelFrame writes v as one frame (4-byte big-endian length, JSON)
// in a single Write, so concurrent writers must still serialise calls.
func WriteTunnelFrame(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding tunnel frame: %w", err)
	}
	if len(body) > MaxMessageFrame {
		return fmt.Errorf("tunnel frame of %d bytes exceeds %d", len(body), MaxMessageFrame)
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("writing tunnel frame: %w", err)
	}
	return nil
}

// ReadTunnelFrame reads one frame into v. It reads exactly the frame's
// bytes and nothing after them, so raw session bytes that follow a header
// stay in the stream. io.EOF means the stream ended cleanly between frames.
func ReadTunnelFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("reading tunnel frame: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxMessageFrame {
		return fmt.Errorf("%w: %d bytes exceeds %d", ErrFrameTooLarge, n, MaxMessageFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return fmt.Errorf("reading tunnel frame: %w", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrFrameDecode, err)
	}
	return nil
}
