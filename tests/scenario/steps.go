// Package scenario runs the appliance end to end, the way an operator
// meets it: the disk taken out of the shipped OVA, booted in QEMU on
// vSphere-like hardware (-machine pc, OVMF, vmxnet3, the disk on
// virtio-scsi, the CD-ROM on IDE), with the lab control plane and a target
// reachable from the guest through a network namespace (tests/labnet).
//
// A scenario is a list of named steps that one VM carries in sequence —
// deploy, a session, a warm reboot, a power cycle, DATA wiped, recovery —
// each timed; the runner stops at the first failure and prints the time
// of every step. Later work (A/B updates) adds steps to the list: a step
// gets the Appliance, whose helpers type on the serial console, wait for
// screen text, watch the lab, power the VM off and on (its EFI variables
// kept), swap the CD-ROM and take screendumps.
//
// The tests need VAULTPAM_OVA (make test and make e2e set it), root (a
// network namespace), QEMU with OVMF, qemu-img, debugfs and genisoimage;
// they skip with the reason otherwise.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Step is one named part of a scenario.
type Step struct {
	Name string
	Run  func(ctx context.Context, a *Appliance) error
}

// Kind says how a step failed.
type Kind int

const (
	// Broken: the harness could not do its part (QEMU, disk, lab).
	Broken Kind = iota
	// Timeout: what the step waited for did not happen in time.
	Timeout
	// Wrong: it happened, but not as it must (other ID, other state, bytes).
	Wrong
)

func (k Kind) String() string {
	switch k {
	case Timeout:
		return "timeout"
	case Wrong:
		return "wrong"
	}
	return "broken"
}

// Failure is a step's error with its kind.
type Failure struct {
	Kind Kind
	Err  error
}

func (f *Failure) Error() string { return f.Kind.String() + ": " + f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

func timeout(err error) error { return &Failure{Timeout, err} }
func wrong(format string, args ...any) error {
	return &Failure{Wrong, fmt.Errorf(format, args...)}
}

// kindOf returns the kind of err (Broken when it carries none).
func kindOf(err error) Kind {
	var f *Failure
	if errors.As(err, &f) {
		return f.Kind
	}
	return Broken
}

// Timing is how long one step took.
type Timing struct {
	Step     string
	Duration time.Duration
	Err      error
}

// Run runs steps in order on a, stops at the first failure, and logs the
// time of each step as it ends and a table at the end, which it also
// writes to $VAULTPAM_BUILD/<test>-timings.txt when that is set.
func Run(ctx context.Context, t *testing.T, a *Appliance, steps []Step) []Timing {
	t.Helper()
	var timings []Timing
	start := time.Now()
	for _, s := range steps {
		t0 := time.Now()
		a.logf("=== step %s", s.Name)
		err := s.Run(ctx, a)
		d := time.Since(t0)
		timings = append(timings, Timing{Step: s.Name, Duration: d, Err: err})
		if err != nil {
			t.Errorf("step %s failed after %s (%s): %v", s.Name, d.Round(100*time.Millisecond), kindOf(err), err)
			break
		}
		t.Logf("step %-22s %8s", s.Name, d.Round(100*time.Millisecond))
		a.logf("=== step %s done in %s", s.Name, d.Round(100*time.Millisecond))
	}
	table := formatTimings(t.Name(), timings, time.Since(start))
	t.Log("\n" + table)
	if dir := os.Getenv("VAULTPAM_BUILD"); dir != "" {
		name := strings.ReplaceAll(t.Name(), "/", "_") + "-timings.txt"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(table), 0o644); err != nil {
			t.Logf("writing the timings: %v", err)
		}
	}
	return timings
}

func formatTimings(name string, ts []Timing, total time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (TCG, %s)\n", name, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	for _, tm := range ts {
		status := "ok"
		if tm.Err != nil {
			status = "FAILED (" + kindOf(tm.Err).String() + ")"
		}
		fmt.Fprintf(&b, "  %-24s %9s  %s\n", tm.Step, tm.Duration.Round(100*time.Millisecond), status)
	}
	fmt.Fprintf(&b, "  %-24s %9s\n", "total", total.Round(100*time.Millisecond))
	return b.String()
}
