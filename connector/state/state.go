// Package state is the connector's state vocabulary, defined once: the
// states of the runtime state machine, the internal name each has in the
// status JSON ("needs_recovery") and the label people see ("Needs
// recovery"). The agent's state machine, the tunnel client, the local API,
// the CLI and the console all use it; the agent alone decides transitions.
package state

import "fmt"

// State is a connector state. The zero value is AwaitingToken.
type State int

// The states, in the order of a first deployment.
const (
	AwaitingToken State = iota // no identity yet: waiting for an enrolment token
	Enrolling                  // presenting a token to the control plane
	Connecting                 // identity loaded; checking it and opening the tunnel
	Online                     // tunnel up, heartbeats acknowledged
	Reconnecting               // tunnel lost; retrying with backoff
	NeedsRecovery              // configured, but the identity is gone or refused
	Draining                   // shutting down: no new sessions
	// Stopped is the tunnel client's end state after Run returned; the
	// connector itself never reports it.
	Stopped
)

var table = [...]struct{ name, label string }{
	AwaitingToken: {"awaiting_token", "Waiting for token"},
	Enrolling:     {"enrolling", "Enrolling"},
	Connecting:    {"connecting", "Connecting"},
	Online:        {"online", "Online"},
	Reconnecting:  {"reconnecting", "Offline (reconnecting)"},
	NeedsRecovery: {"needs_recovery", "Needs recovery"},
	Draining:      {"draining", "Draining"},
	Stopped:       {"stopped", "Stopped"},
}

// String is the internal name, as in the status JSON ("needs_recovery").
func (s State) String() string {
	if s >= 0 && int(s) < len(table) {
		return table[s].name
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Label is the text people see ("Needs recovery").
func (s State) Label() string {
	if s >= 0 && int(s) < len(table) {
		return table[s].label
	}
	return s.String()
}

// Parse returns the state with internal name name.
func Parse(name string) (State, bool) {
	for s, e := range table {
		if e.name == name {
			return State(s), true
		}
	}
	return 0, false
}

// LabelOf returns the label for an internal name, or the name itself when
// it is unknown: a newer connector talking to an older console still shows
// something true.
func LabelOf(name string) string {
	if s, ok := Parse(name); ok {
		return s.Label()
	}
	return name
}
