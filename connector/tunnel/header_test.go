package tunnel_test

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/vaultpam/appliance/connector/protocol"
)

// A malformed or oversized session header, sent over real yamux, gets a
// typed bad_request refusal that fits in a frame (and no dial), never a
// silently closed stream or a refusal too large to send.
func TestBadSessionHeadersAreRefused(t *testing.T) {
	header := func(id, target string) []byte {
		b, _ := json.Marshal(protocol.SessionHeader{SessionID: id, Target: target})
		return b
	}
	frame := func(body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"oversized length", append(binary.BigEndian.AppendUint32(nil, 1<<31), "{}"...), "larger than"},
		{"just over the limit", frame(make([]byte, protocol.MaxMessageFrame+1)), "larger than"},
		{"not JSON", frame([]byte("{nope")), "not valid JSON"},
		{"huge session ID", frame(header(strings.Repeat("a", 60<<10), "10.0.0.1:22")), "session ID longer than"},
		{"huge target", frame(header("s1", strings.Repeat("h", 60<<10)+":22")), "target longer than"},
		{"session ID with a newline", frame(header("s1\nforged", "10.0.0.1:22")), "printable ASCII"},
		{"no session ID", frame(header("", "10.0.0.1:22")), "without a session ID"},
		{"no target", frame(header("s1", "")), "without a target"},
		{"not host:port", frame(header("s1", "/run/vaultpam/connector.sock")), "want host:port"},
	}
	type result struct {
		reply *protocol.SessionReply
		err   error
	}
	results := make(chan result, len(cases))
	f := newFakeControlPlane(t, func(mux *yamux.Session, ctl *yamux.Stream) {
		for _, tc := range cases {
			st, err := mux.OpenStream()
			if err != nil {
				results <- result{err: err}
				continue
			}
			st.SetDeadline(time.Now().Add(30 * time.Second))
			go st.Write(tc.raw) // may block on the window when refused early
			var r protocol.SessionReply
			err = protocol.ReadTunnelFrame(st, &r)
			results <- result{&r, err}
			st.Close()
		}
	})
	f.client(t, nil)
	for _, tc := range cases {
		r := <-results
		switch {
		case r.err != nil:
			t.Errorf("%s: no refusal frame: %v", tc.name, r.err)
		case r.reply.OK || r.reply.Error == nil || r.reply.Error.Code != protocol.ReasonBadRequest || !strings.Contains(r.reply.Error.Message, tc.want):
			t.Errorf("%s: reply %+v (error %+v), want bad_request saying %q", tc.name, r.reply, r.reply.Error, tc.want)
		case len(r.reply.Error.Message) > 1024:
			t.Errorf("%s: refusal of %d bytes repeats the header", tc.name, len(r.reply.Error.Message))
		}
	}
}
