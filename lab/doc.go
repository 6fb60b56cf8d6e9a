// Package lab is the lab control plane: a small, real stand-in for
// the VaultPAM control plane that tests and developers run on loopback.
//
// An Authority holds the enrolment state in a directory: a CA (ECDSA P-256,
// ca.pem and ca-key.pem), enrolment and recovery tokens (single-use, with a
// TTL, stored only as SHA-256 hashes), and the connector registry with each
// connector's status and last heartbeat (state.json, written atomically).
// Only one process holds a state directory at a time (flock on DIR/lock).
//
// A Server is the control plane's one TLS listener: HTTPS enrolment
// (protocol.EnrolStartPath, EnrolFinishPath, WhoAmIPath) and, for
// connections that select ALPN protocol.ALPNTunnel with an accepted client
// certificate, the tunnel, handed to a TunnelHandler (the broker).
//
// NewTest starts one on 127.0.0.1:0 for a test. The vaultpam-lab command
// (lab/cmd/vaultpam-lab) runs one as a process.
package lab
