package agent

import (
	"fmt"
	"slices"

	"github.com/vaultpam/appliance/connector/localapi"
)

// State is the connector's runtime state (DESIGN.md §5). Its String is
// the internal name used in the status JSON.
type State int

// The states. The zero value is AwaitingToken.
const (
	AwaitingToken State = iota
	Enrolling
	Connecting
	Online
	Reconnecting
	NeedsRecovery
	Draining
)

var stateNames = [...]string{
	AwaitingToken: localapi.StateAwaitingToken,
	Enrolling:     localapi.StateEnrolling,
	Connecting:    localapi.StateConnecting,
	Online:        localapi.StateOnline,
	Reconnecting:  localapi.StateReconnecting,
	NeedsRecovery: localapi.StateNeedsRecovery,
	Draining:      localapi.StateDraining,
}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Label is the UI text for s ("Needs recovery").
func (s State) Label() string { return localapi.Label(s.String()) }

// transitions lists, for each state, the states it may go to. Every
// state change goes through Agent.transition, which enforces this table.
var transitions = map[State][]State{
	AwaitingToken: {Enrolling, Draining},
	NeedsRecovery: {Enrolling, Draining},
	Enrolling:     {AwaitingToken, NeedsRecovery, Connecting, Draining},
	Connecting:    {Online, Reconnecting, NeedsRecovery, Draining},
	Online:        {Connecting, Reconnecting, NeedsRecovery, Draining},
	Reconnecting:  {Online, Connecting, NeedsRecovery, Draining},
	Draining:      {},
}

// CanTransition reports whether from → to is allowed. Staying in the same
// state (with a new reason) is always allowed.
func CanTransition(from, to State) bool {
	return from == to || slices.Contains(transitions[from], to)
}

// Transition is one recorded state change.
type Transition struct {
	From, To State
	Reason   string
}
