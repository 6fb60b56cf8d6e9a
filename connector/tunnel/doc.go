// Package tunnel is the connector's side of the reverse tunnel to the
// control plane (ARCHITECTURE.md, "Protocol", 3–6): it dials the control plane over TLS
// 1.3 with the connector's client certificate (optionally through an HTTP
// CONNECT proxy), runs a yamux session on top, sends heartbeats on a control
// stream, renews the certificate before half its lifetime is gone, accepts
// session streams the control plane opens, checks their targets against
// allowed_targets, dials them and relays bytes both ways with half-close.
//
// A Client reconnects by itself with jittered exponential backoff and stops
// with ErrNeedsRecovery when the control plane refuses its identity for good
// (revoked, unknown, expired): retrying could not help, an operator must act.
// Shutdown drains: no new sessions (yamux GoAway), existing sessions get a
// grace period, then the tunnel closes.
//
// The wire messages live in connector/protocol (tunnel*.go); the control
// plane's side is lab/broker. README.md in this directory
// explains the protocol, the yamux settings and how to wire a Client.
package tunnel
