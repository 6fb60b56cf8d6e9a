package broker

import (
	"errors"
	"fmt"

	"github.com/vaultpam/appliance/connector/protocol"
)

// Sentinels for errors.Is on an *Error or a *SessionEndedError.
var (
	ErrConnectorOffline  = errors.New("connector offline")
	ErrConnectorDraining = errors.New("connector draining")
	ErrNotAllowed        = errors.New("target not allowed by the connector")
	ErrTargetUnreachable = errors.New("target unreachable from the connector")
)

func sentinel(r protocol.Reason) error {
	switch r {
	case protocol.ReasonConnectorOffline:
		return ErrConnectorOffline
	case protocol.ReasonDraining:
		return ErrConnectorDraining
	case protocol.ReasonNotAllowed:
		return ErrNotAllowed
	case protocol.ReasonDialFailed, protocol.ReasonDialTimeout, protocol.ReasonResolveFailed:
		return ErrTargetUnreachable
	}
	return nil
}

// Error is a refused Dial: Reason is the typed cause (from the broker, e.g.
// connector_offline, or from the connector, e.g. not_allowed), Message
// says it for people.
type Error struct {
	ConnectorID string
	Target      string
	Reason      protocol.Reason
	Message     string
}

func (e *Error) Error() string {
	return fmt.Sprintf("session to %s via connector %s refused: %s (%s)", e.Target, e.ConnectorID, e.Message, e.Reason)
}

// Unwrap lets errors.Is match ErrConnectorOffline and the other sentinels.
func (e *Error) Unwrap() error { return sentinel(e.Reason) }

// SessionEndedError is what Read and Write of a Session return once the
// session was ended by something other than a normal close: the connector
// went offline, the connector drained, an abort.
type SessionEndedError struct {
	SessionID string
	Reason    protocol.Reason
	Detail    string
}

func (e *SessionEndedError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("session %s ended: %s", e.SessionID, e.Reason)
	}
	return fmt.Sprintf("session %s ended: %s: %s", e.SessionID, e.Reason, e.Detail)
}

// Unwrap lets errors.Is match ErrConnectorOffline and the other sentinels.
func (e *SessionEndedError) Unwrap() error { return sentinel(e.Reason) }
