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
//	any → NeedsRecovery (the control plane refused this connector's own
//	                    certificate; Run returns)
//	Online → Draining (Shutdown) → Stopped
//	any → Stopped (Run's context ended)

// Status is a snapshot of the Client for the status API and the console.
// Zero times mean "not yet".
type Status struct {
	State  state.State
	Reason string    // why this state, for people; empty when online
	Hint   string    // what the operator does next, when the reason calls for it
	Since  time.Time // when State was entered

	ConnectorID       string        // as confirmed by the control plane
	LastSuccess       time.Time     // last time the tunnel came up
	LastHeartbeat     time.Time     // last heartbeat the control plane acknowledged
	HeartbeatInterval time.Duration // as set by the control plane
	RTT               time.Duration // of the last heartbeat round trip (at first, of a ping right after connecting)
	ActiveSessions    int
	Attempt           int       // failed connection attempts since the last success
	NextRetry         time.Time // when Reconnecting: the next attempt

	// ClockOffset is the control plane's clock minus this machine's,
	// estimated at the midpoint of the last hello or heartbeat round trip
	// (error at most half the RTT); ClockMeasured is when, zero before the
	// first estimate. Kept while the tunnel is down: a wrong clock is one
	// reason it may be.
	ClockOffset   time.Duration
	ClockMeasured time.Time
	// SupportRecipient is the age recipient the control plane announced
	// for support bundles in its last hello_ack ("" when none).
	SupportRecipient string
}

// ErrTunnelDown is returned by SendStream when the tunnel is not up.
var ErrTunnelDown = errors.New("the tunnel to the control plane is down")

// ErrNeedsRecovery is returned by Run (wrapped with the reason) when the
// control plane refuses the connector's own certificate for good in its
// hello_ack (cert_revoked, cert_unknown, cert_expired), or when there is no
// identity to present. Retrying cannot help; the operator recovers the
// connector with a recovery token. TLS failures never lead here: a
// certificate the connector cannot verify, a TLS alert (which a
// TLS-inspecting proxy may send) or this machine's clock's opinion of the
// connector's certificate are retried with backoff.
var ErrNeedsRecovery = errors.New("connector identity not accepted by the control plane")

// ErrClientClosed is returned by Run when Shutdown finished.
var ErrClientClosed = errors.New("tunnel client shut down")
