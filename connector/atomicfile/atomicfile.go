// Package atomicfile replaces a file so that a reader, or the machine after
// a crash or power loss at any instant, sees either the old content or the
// whole new one, never a mix: a temporary file in the same directory,
// written, fsynced and closed, renamed over the target, then the directory
// fsynced so the rename itself is durable.
//
// It is the one atomic write of the project: the connector's identity
// store, the console's /config files, the lab's state and the release
// files all go through it.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Step names a point in Write, for fault injection in tests.
type Step int

// The steps of Write, in order.
const (
	StepCreateTemp Step = iota
	StepWriteHalf       // the first half of the bytes
	StepWriteRest
	StepSync
	StepClose
	StepRename
	StepSyncDir
	NumSteps
)

var stepNames = [...]string{"create-temp", "write-half", "write-rest", "fsync", "close", "rename", "fsync-dir"}

func (s Step) String() string {
	if s >= 0 && int(s) < len(stepNames) {
		return stepNames[s]
	}
	return fmt.Sprintf("step(%d)", int(s))
}

// Options shape a Write. The zero value writes with mode 0600 and does not
// create the directory.
type Options struct {
	// Perm is the new file's mode; 0 means 0600. It is set on the temporary
	// file before any byte is written, so a secret is never readable by
	// others, not even half written.
	Perm os.FileMode
	// MkdirAll creates the directory (mode 0755, or 0700 when Perm gives
	// others no access) when it is missing.
	MkdirAll bool
	// BeforeStep, when set, runs before each step; an error aborts Write
	// there (the temporary file is removed unless the rename happened).
	// Tests use it to fail or kill the process at every step.
	BeforeStep func(Step) error
}

// WriteFile replaces path with data, mode perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, data, Options{Perm: perm})
}

// Write replaces path with data as o says. Errors name the path and the
// step that failed.
func Write(path string, data []byte, o Options) error {
	if o.Perm == 0 {
		o.Perm = 0o600
	}
	dir := filepath.Dir(path)
	step := func(s Step) error {
		if o.BeforeStep != nil {
			if err := o.BeforeStep(s); err != nil {
				return fmt.Errorf("writing %s at %s: %w", path, s, err)
			}
		}
		return nil
	}
	if o.MkdirAll {
		mode := os.FileMode(0o755)
		if o.Perm&0o077 == 0 {
			mode = 0o700
		}
		if err := os.MkdirAll(dir, mode); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	if err := step(StepCreateTemp); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, TempPrefix(path)+"*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(o.Perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	half := len(data) / 2
	for _, part := range []struct {
		s Step
		b []byte
	}{{StepWriteHalf, data[:half]}, {StepWriteRest, data[half:]}} {
		if err := step(part.s); err != nil {
			return err
		}
		if _, err := f.Write(part.b); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := step(StepSync); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: fsync: %w", path, err)
	}
	if err := step(StepClose); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := step(StepRename); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	renamed = true
	if err := step(StepSyncDir); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("writing %s: fsync of %s: %w", path, dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("writing %s: fsync of %s: %w", path, dir, err)
	}
	return nil
}

// TempPrefix is the name prefix of Write's temporary files for path, for
// callers that clean up what a crash left behind (RemoveTemps).
func TempPrefix(path string) string {
	return "." + filepath.Base(path) + ".tmp-"
}

// RemoveTemps deletes temporary files of path that a crashed Write left
// behind. Call it only while no Write of path is running.
func RemoveTemps(path string) {
	m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), escapeGlob(TempPrefix(path))+"*"))
	for _, p := range m {
		os.Remove(p)
	}
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}
