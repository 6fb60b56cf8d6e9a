package console

import (
	"context"
	"errors"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/firstboot/internal/diag"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// An apply pipeline is a list of named steps run in order; the first
// failure stops it. A failure has a kind, which decides what the operator
// is offered next. The lists are built in steps.go: setupSteps for the
// first-boot wizard, networkSteps for "edit network" on the health screen.

// failKind says what a failed step offers besides E (edit) and R (retry).
type failKind int

const (
	failOther failKind = iota // nothing more
	failCheck                 // a diagnostic check: C continues after the checks
	failToken                 // the connector refused the token: T takes a new one
)

// stepFailure is a failed step: msg names the step and the problem, hint
// says what to do next.
type stepFailure struct {
	kind      failKind
	msg, hint string
	// untrusted: the TLS check found a chain no trusted CA issued; the
	// apply screen shows it and offers to trust its root.
	untrusted *diag.Result
}

func (f *stepFailure) Error() string { return f.msg }

// skipped is returned by a step that did not apply, saying why.
type skipped struct{ detail string }

func (s skipped) Error() string { return s.detail }

// step is one named step of an apply pipeline.
type step struct {
	id    string // stable name, to resume at (stepToken); "" if never resumed at
	title string // what the screen shows
	check bool   // a diagnostic check: "continue anyway" resumes after the last check
	// run does the step and returns the detail shown beside it. A failure
	// is a *stepFailure (any other error counts as failOther with its
	// text); skipped marks the step skipped.
	run func(ctx context.Context, r *applyRun) (detail string, err error)
}

// Step IDs the apply screen resumes at.
const stepToken = "token"

// applyRun is what the steps of one pipeline run share. It lives on the
// run's goroutine.
type applyRun struct {
	env   Env
	s     settings.Settings
	token string // canonical; "" when there is none to hand over
	// handOver is called just before the token leaves for the connector:
	// whatever the answer, it is never sent again.
	handOver func()
	// progress updates the running step's detail.
	progress func(detail string)
	probe    *diag.Probe      // what the checks found so far; nil before the first
	online   *localapi.Status // the connector's status once enrolled
}

func (r *applyRun) close() {
	if r.probe != nil {
		r.probe.Close()
	}
}

// asFailure returns err as a step failure.
func asFailure(err error) *stepFailure {
	var f *stepFailure
	if errors.As(err, &f) {
		return f
	}
	return &stepFailure{kind: failOther, msg: err.Error()}
}

// stepIndex returns the position of the step with id, or -1.
func stepIndex(steps []step, id string) int {
	for i, s := range steps {
		if s.id == id {
			return i
		}
	}
	return -1
}

// afterChecks returns the position of the first step after the last
// diagnostic check, where "continue anyway" resumes.
func afterChecks(steps []step) int {
	n := 0
	for i, s := range steps {
		if s.check {
			n = i + 1
		}
	}
	return n
}
