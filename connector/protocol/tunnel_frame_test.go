package protocol

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTunnelFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := TunnelMessage{Type: MsgSessionEnd, SessionEnd: &SessionEnd{SessionID: "s1", Reason: ReasonTargetClosed, BytesUp: 3}}
	if err := WriteTunnelFrame(&buf, &in); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("raw bytes after the frame")
	var out TunnelMessage
	if err := ReadTunnelFrame(&buf, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
	if rest, _ := io.ReadAll(&buf); string(rest) != "raw bytes after the frame" {
		t.Errorf("bytes after the frame = %q; ReadTunnelFrame read past its frame", rest)
	}
	if err := ReadTunnelFrame(&buf, &out); err != io.EOF {
		t.Errorf("ReadTunnelFrame at the end = %v, want io.EOF", err)
	}
}

func TestTunnelFrameLimits(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxMessageFrame+1)
	var m TunnelMessage
	if err := ReadTunnelFrame(bytes.NewReader(hdr[:]), &m); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("ReadTunnelFrame of an oversized frame = %v, want an exceeds error", err)
	}
	big := SessionEnd{Detail: strings.Repeat("x", MaxMessageFrame)}
	if err := WriteTunnelFrame(io.Discard, &big); err == nil {
		t.Error("WriteTunnelFrame of an oversized message = nil")
	}
	if err := ReadTunnelFrame(bytes.NewReader([]byte{0, 0, 0, 5, '{'}), &m); err == nil {
		t.Error("ReadTunnelFrame of a truncated frame = nil")
	}
}

func TestTunnelPermanent(t *testing.T) {
	// no_client_cert is not permanent: a TLS-inspecting proxy in between
	// strips the certificate; the connector's identity is not judged.
	for code, want := range map[string]bool{TunnelRevoked: true, TunnelUnknown: true, TunnelExpired: true, TunnelNoCert: false,
		TunnelNotYetValid: false, TunnelBadHello: false, TunnelUnavailable: false, TunnelRenewFailed: false} {
		if got := TunnelPermanent(code); got != want {
			t.Errorf("TunnelPermanent(%q) = %v, want %v", code, got, want)
		}
	}
}
