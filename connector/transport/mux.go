package transport

import (
	"io"
	"net"
	"time"

	"github.com/hashicorp/yamux"
)

// Yamux settings both ends of the tunnel use. They are explicit because
// yamux's defaults do not suit a long-lived tunnel carrying bulk and
// interactive sessions side by side:
//
//   - MaxStreamWindowSize 512 KiB: the window caps the bytes one stream
//     has in flight, and on the shared connection an interactive frame
//     waits behind them. Measured on loopback (tests/bench): single-stream
//     throughput is the same from 256 KiB to 1 MiB (the tunnel is CPU
//     bound), while interactive p99 under bulk drops from ~4.4 ms at 1 MiB
//     to ~2.8 ms at 512 KiB (230 ms at 16 MiB). The cost is on long paths:
//     512 KiB per RTT is ~84 Mbit/s per session at 50 ms.
//   - KeepAlive every 15 s: a ping that finds a dead connection within
//     ConnectionWriteTimeout (the ping waits that long for its answer).
//   - ConnectionWriteTimeout 10 s: a write that cannot reach the socket for
//     this long fails instead of blocking its caller forever.
//   - StreamOpenTimeout 10 s: a stream the peer never acknowledges closes
//     the session (yamux treats it as a dead peer) rather than hanging.
//   - StreamCloseTimeout 30 s: a half-closed stream whose peer never sends
//     its FIN is reset after this, instead of leaking for 5 minutes.
//   - AcceptBacklog 1024: session bursts are not refused by the mux.
const (
	// MaxDataFrame is the largest data frame either side writes: ~0.3 ms
	// of encryption and one write system call on loopback (see BatchConn),
	// so one bulk session never holds the send loop long. Smaller frames
	// cost ~10% more CPU per MiB in tests/bench.
	MaxDataFrame = 256 << 10

	StreamWindow       = 512 << 10
	KeepAlive          = 15 * time.Second
	WriteTimeout       = 10 * time.Second
	StreamOpenTimeout  = 10 * time.Second
	StreamCloseTimeout = 30 * time.Second
	AcceptBacklog      = 1024
)

// MuxConfig returns the yamux configuration of the tunnel. Yamux's
// own log lines go to logOutput (io.Discard when nil).
func MuxConfig(logOutput io.Writer) *yamux.Config {
	if logOutput == nil {
		logOutput = io.Discard
	}
	return &yamux.Config{
		AcceptBacklog:          AcceptBacklog,
		EnableKeepAlive:        true,
		KeepAliveInterval:      KeepAlive,
		ConnectionWriteTimeout: WriteTimeout,
		MaxStreamWindowSize:    StreamWindow,
		StreamOpenTimeout:      StreamOpenTimeout,
		StreamCloseTimeout:     StreamCloseTimeout,
		LogOutput:              logOutput,
	}
}

// Client starts the connector's side of the tunnel's yamux session over
// conn, the TLS connection to the control plane (or a wrapper around it).
// under is the BatchConn under conn's TLS layer (see NewBatchConn), or nil
// when there is none; frames are then coalesced by copying.
func Client(conn io.ReadWriteCloser, under *BatchConn) (*yamux.Session, error) {
	return yamux.Client(CoalescingConn(conn, under), MuxConfig(nil))
}

// Server starts the control plane's side of the tunnel's yamux session over
// conn; under is as for Client (BatchListener makes it).
func Server(conn io.ReadWriteCloser, under *BatchConn) (*yamux.Session, error) {
	return yamux.Server(CoalescingConn(conn, under), MuxConfig(nil))
}

// Under returns the BatchConn under a TLS connection's NetConn, or nil.
func Under(tc interface{ NetConn() net.Conn }) *BatchConn {
	b, _ := tc.NetConn().(*BatchConn)
	return b
}
