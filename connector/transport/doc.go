// Package transport is the connection machinery under the tunnel, shared by
// the connector (connector/tunnel) and the control plane side (the lab's
// broker): the yamux settings both ends use (MuxConfig and its limits), a
// BatchConn under TLS that cuts system calls, and a CoalescingConn over TLS
// that keeps a yamux frame's header and body in one write. Client and Server
// put them together.
//
// What travels through it (messages, frames, the token format) is defined in
// package protocol; this package knows nothing of their content.
package transport
