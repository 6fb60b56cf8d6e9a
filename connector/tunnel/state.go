package tunnel

import (
	"errors"
	"time"

	"github.com/vaultpam/appliance/connector/state"
)

// The Client's states (package state), changed in one place
// (Client.setState):
//
//	Connecting → Online → Reconnecting → Online …
//	any → NeedsRecovery (permanent auth failure; Run returns)
//	Online → Draining (Shutdown) → Stopped
//	any → Stopped (Run's context ended)

// Status is a snapshot of the Client for the status API and the console.
// Zero times mean "not yet".
type Status struct {
	State  state.State
	Reason string    // why this state, for people; empty when online
	Since  time.Time // when State was entered

	ConnectorID       string        // as confirmed by the control plane
	LastSuccess       time.Time     // last time the tunnel came up
	LastHeartbeat     time.Time     // last heartbeat the control plane acknowledged
	HeartbeatInterval time.Duration // as set by the control plane
	RTT               time.Duration // of the last heartbeat round trip (at first, of a ping right after connecting)
	ActiveSessions    int
	Attempt           int       // failed connection attempts since the last success
	NextRetry         time.Time // when Reconnecting: the next attempt
}

// ErrNeedsRecovery is returned by Run (wrapped with the reason) when the
// control plane refuses the connector's identity for good: revoked,
// unknown, expired or no certificate. Retrying cannot help; the operator
// recovers the connector with a recovery token.
var ErrNeedsRecovery = errors.New("connector identity not accepted by the control plane")

// ErrClientClosed is returned by Run when Shutdown finished.
var ErrClientClosed = errors.New("tunnel client shut down")
