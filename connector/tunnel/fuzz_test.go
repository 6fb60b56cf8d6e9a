package tunnel_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/vaultpam/appliance/connector/allowlist"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/tunnel"
)

// fuzzAppliance is the machine the fuzzed sessions run on.
func fuzzAppliance() ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.0.2.10/24")}, nil
}

// anyName resolves every name to a public and a loopback address, as a
// hostile DNS answer would.
type anyName struct{}

func (anyName) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("127.0.0.1")}, nil
}

// FuzzSessionHeader sends fuzzed session streams to a real connector over
// real TLS and yamux, as a control plane would. Properties:
//
//   - a complete frame (or a length prefix over the limit) is always
//     answered with a typed refusal that fits in a frame, and reported
//     with a session_end of the same reason; an incomplete one is closed;
//   - nothing in the default deny set is ever dialled, and what is
//     dialled is an address, never a name to resolve again.
func FuzzSessionHeader(f *testing.F) {
	type tunnelEnds struct {
		mux *yamux.Session
		ctl *yamux.Stream
	}
	ends := make(chan tunnelEnds, 1)
	stop := make(chan struct{})
	f.Cleanup(func() { close(stop) })
	cp := newFakeControlPlane(f, func(mux *yamux.Session, ctl *yamux.Stream) {
		ends <- tunnelEnds{mux, ctl}
		<-stop
	})
	var mu sync.Mutex
	var dialled []string
	cp.client(f, func(c *tunnel.Config) {
		c.LocalAddrs = fuzzAppliance
		c.Resolver = anyName{}
		c.DialTarget = func(_ context.Context, _, addr string) (net.Conn, error) {
			mu.Lock()
			dialled = append(dialled, addr)
			mu.Unlock()
			return nil, errors.New("fuzz: no target here")
		}
	})
	var tun tunnelEnds
	select {
	case tun = <-ends:
	case <-time.After(time.Minute):
		f.Fatal("the connector never opened its tunnel")
	}
	reports := make(chan protocol.SessionEnd, 16)
	go func() {
		for {
			var m protocol.TunnelMessage
			if err := protocol.ReadTunnelFrame(tun.ctl, &m); err != nil {
				close(reports)
				return
			}
			switch {
			case m.Type == protocol.MsgSessionEnd && m.SessionEnd != nil:
				reports <- *m.SessionEnd
			case m.Type == protocol.MsgHeartbeat && m.Heartbeat != nil: // keep the tunnel up
				protocol.WriteTunnelFrame(tun.ctl, &protocol.TunnelMessage{Type: protocol.MsgHeartbeatAck,
					Ack: &protocol.TunnelAck{Seq: m.Heartbeat.Seq, HeartbeatInterval: 10 * time.Second, ServerTime: time.Now()}})
			}
		}
	}()
	deny, _ := allowlist.DenySet(fuzzAppliance)

	f.Fuzz(func(t *testing.T, raw []byte) {
		mu.Lock()
		dialled = nil
		mu.Unlock()
		st, err := tun.mux.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		st.SetDeadline(time.Now().Add(time.Minute))
		go func() {
			st.Write(raw) // blocks on the window when the connector refuses early
			st.Close()    // FIN: the connector reads EOF after raw
		}()
		var reply protocol.SessionReply
		rerr := protocol.ReadTunnelFrame(st, &reply)
		complete := len(raw) >= 4 && (binary.BigEndian.Uint32(raw) > protocol.MaxMessageFrame || len(raw) >= 4+int(binary.BigEndian.Uint32(raw)))
		switch {
		case rerr != nil && complete:
			t.Fatalf("header %q: no answer (%v); a complete frame gets a typed refusal", raw, rerr)
		case rerr != nil:
			return // incomplete: closed without an answer, nothing to report
		case reply.OK || reply.Error == nil:
			t.Fatalf("header %q: answer %+v, but every dial fails here", raw, reply)
		}
		select {
		case end, ok := <-reports:
			if !ok {
				t.Fatal("the control stream closed")
			}
			if end.Reason != reply.Error.Code {
				t.Fatalf("header %q refused with %s, reported as %s", raw, reply.Error.Code, end.Reason)
			}
		case <-time.After(time.Minute):
			t.Fatalf("header %q refused with %+v but never reported (a session_end too large to send?)", raw, reply.Error)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, a := range dialled {
			ap, err := netip.ParseAddrPort(a)
			if err != nil {
				t.Fatalf("header %q: the connector dialled %q, not an address", raw, a)
			}
			for _, d := range deny {
				if d.Range.Contains(ap.Addr().Unmap()) {
					t.Fatalf("header %q: the connector dialled %s, in the default deny set (%s)", raw, a, d.What)
				}
			}
		}
	})
}

// proxyPassword is the credential FuzzConnectReply hands the CONNECT.
const proxyPassword = "pr0xy-S3cret-9f2c"

// statusLine is what a proxy's answer must start with to open the tunnel.
var statusLine = regexp.MustCompile(`^HTTP/1\.[01] 2[0-9][0-9]( |$)`)

// FuzzConnectReply feeds fuzzed proxy answers to ConnectThrough over a
// pipe. It accepts only an HTTP/1.x 2xx status line, reads nothing past
// the answer's header (the TLS handshake follows on the same connection),
// refuses headers over 8 KiB, and never puts the proxy password in an
// error unless the proxy itself sent it back.
func FuzzConnectReply(f *testing.F) {
	const after = "\x16\x03\x01 server bytes after the header"
	user := url.UserPassword("svc", proxyPassword)
	f.Fuzz(func(t *testing.T, answer []byte) {
		client, proxy := net.Pipe()
		defer client.Close()
		go func() {
			defer proxy.Close()
			br := make([]byte, 4096)
			var req []byte
			for !bytes.Contains(req, []byte("\r\n\r\n")) {
				n, err := proxy.Read(br)
				if err != nil {
					return
				}
				req = append(req, br[:n]...)
			}
			proxy.Write(answer)
			proxy.Write([]byte(after))
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := tunnel.ConnectThrough(ctx, client, "cp.example.com:443", user)
		head, _, found := bytes.Cut(answer, []byte("\r\n\r\n"))
		status, _, _ := strings.Cut(string(head), "\r\n")
		if err != nil {
			if strings.Contains(err.Error(), proxyPassword) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte("svc:"+proxyPassword))) {
				if !bytes.Contains(answer, []byte(proxyPassword)) && !bytes.Contains(answer, []byte(base64.StdEncoding.EncodeToString([]byte("svc:"+proxyPassword)))) {
					t.Fatalf("answer %q: error %q holds the proxy password", answer, err)
				}
			}
			return
		}
		if !found || len(head)+4 > 8<<10+1 {
			t.Fatalf("answer %q accepted without a complete header within 8 KiB", answer)
		}
		if !statusLine.MatchString(status) {
			t.Fatalf("answer %q accepted with the status line %q", answer, status)
		}
		rest, _ := io.ReadAll(client)
		want := string(answer[len(head)+4:]) + after
		if string(rest) != want {
			t.Fatalf("answer %q: after the header the connection holds %q, want %q (read past the header)", answer, rest, want)
		}
	})
}
