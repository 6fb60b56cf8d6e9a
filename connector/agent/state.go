package agent

import (
	"slices"

	"github.com/vaultpam/appliance/connector/state"
)

// transitions lists, for each state, the states it may go to. Every
// state change goes through Agent.transition, which enforces this table.
var transitions = map[state.State][]state.State{
	state.AwaitingToken: {state.Enrolling, state.Draining},
	state.NeedsRecovery: {state.Enrolling, state.Draining},
	state.Enrolling:     {state.AwaitingToken, state.NeedsRecovery, state.Connecting, state.Draining},
	state.Connecting:    {state.Online, state.Reconnecting, state.NeedsRecovery, state.Draining},
	state.Online:        {state.Connecting, state.Reconnecting, state.NeedsRecovery, state.Draining},
	state.Reconnecting:  {state.Online, state.Connecting, state.NeedsRecovery, state.Draining},
	state.Draining:      {},
}

// CanTransition reports whether from → to is allowed. Staying in the same
// state (with a new reason) is always allowed.
func CanTransition(from, to state.State) bool {
	return from == to || slices.Contains(transitions[from], to)
}

// Transition is one recorded state change.
type Transition struct {
	From, To state.State
	Reason   string
}
