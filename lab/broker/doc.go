// Package broker is the control plane's side of the connector tunnel
// (ARCHITECTURE.md, "Protocol", 3–5), used by the lab control plane (vaultpam-lab serve)
// and by the benchmarks.
//
// The lab's TLS listener hands every connection that negotiated ALPN
// "vaultpam-tunnel/1" to (*Broker).ServeConn. The broker derives the
// connector ID from the verified client certificate's URI SAN
// (vaultpam://connector/<id>), asks the Registry whether that certificate
// is still accepted, answers the connector's hello with the heartbeat
// interval, tracks heartbeats (Offline after MissedHeartbeats intervals
// without one, or at once when the tunnel closes), renews certificates
// through the Authority, and opens session streams for Dial.
//
// Routing: Dial(ctx, connectorID, target) only uses an Online connector; an
// Offline or Draining one is refused with an *Error whose Reason says why.
// When a connector goes Offline its sessions in flight end at once with
// reason connector_offline: readers and writers get a *SessionEndedError,
// never a hang or a silent EOF. Sessions whose end the connector reported
// before the tunnel closed are not in flight: they keep the reported
// reason (a draining connector closes its tunnel right after its last
// session ends).
//
// The lab provides persistence (connector records, revocation, the CA)
// through the Registry and Authority interfaces; MemoryRegistry is a
// complete in-memory implementation for tests.
package broker
