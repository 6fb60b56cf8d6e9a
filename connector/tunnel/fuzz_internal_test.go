package tunnel

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// deadlineReader is a bytes.Reader that takes (and ignores) read deadlines.
type deadlineReader struct{ *bytes.Reader }

func (deadlineReader) SetReadDeadline(time.Time) error { return nil }

// FuzzStreamReply: the first answer to a typed connector stream lets the
// upload go on only when it says OK and carries no refusal; a refusal
// comes back as the control plane's *protocol.StreamError, unchanged.
func FuzzStreamReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, frame []byte) {
		err := readStreamReply(deadlineReader{bytes.NewReader(frame)})
		var rep protocol.StreamReply
		derr := protocol.ReadTunnelFrame(bytes.NewReader(frame), &rep)
		switch {
		case derr != nil:
			if err == nil {
				t.Fatalf("reply %q does not read (%v), but the upload goes on", frame, derr)
			}
		case rep.Error != nil:
			var se *protocol.StreamError
			if !errors.As(err, &se) || *se != *rep.Error {
				t.Fatalf("refusal %+v came back as %v", rep.Error, err)
			}
		case !rep.OK:
			if err == nil {
				t.Fatalf("reply %q neither accepts nor refuses, but the upload goes on", frame)
			}
		case err != nil:
			b, _ := json.Marshal(rep)
			t.Fatalf("reply %s accepts, but readStreamReply = %v", b, err)
		}
	})
}
