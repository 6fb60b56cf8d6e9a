package console

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Only one console runs the wizard at a time: it holds an flock on
// /run/vaultpam-console/wizard.lock and keeps a setup record next to it,
// so the other console can say "Setup is running on ttyS0", follow along,
// and show how it ended. Everything here is in /run: a reboot forgets it.
const (
	runDir     = "run/vaultpam-console"
	lockName   = "wizard.lock"
	recordName = "setup.json"
	// ovfMarkName exists once the OVF settings were applied unattended in
	// this boot; it says whether the OVF token was handed over. The
	// unattended setup runs at most once a boot, and never sends the OVF
	// token twice.
	ovfMarkName = "ovf-attempt"
)

// Phases of a setup record.
const (
	phaseRunning = "running"
	phaseFailed  = "failed"
)

// setupRecord is what the console running setup tells the other one. It
// never holds a secret.
type setupRecord struct {
	TTY        string   `json:"tty"`
	PID        int      `json:"pid"`
	Unattended bool     `json:"unattended,omitempty"` // from the OVF environment, nobody at the console
	Phase      string   `json:"phase"`
	Progress   []string `json:"progress"`       // what it is doing, or the step lines
	Step       string   `json:"step,omitempty"` // the failed step
	Kind       failKind `json:"kind,omitempty"`
	Message    string   `json:"message,omitempty"`
	Hint       string   `json:"hint,omitempty"`
}

// stoppedUnattended reports whether the record is an unattended setup that
// failed: both consoles show it, and nothing retries it by itself.
func (r setupRecord) stoppedUnattended() bool { return r.Unattended && r.Phase == phaseFailed }

type wizardLock struct {
	f    *os.File
	path string // the setup record
	rec  setupRecord
}

// tryLock takes the wizard lock. It returns the lock (nil when another
// console holds it) and the setup record found (the holder's, or the one a
// console left behind). Taking the lock writes nothing.
func tryLock(root string) (l *wizardLock, found setupRecord, err error) {
	dir := filepath.Join(root, runDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, found, fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, found, fmt.Errorf("opening wizard lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, readRecord(root), nil
	}
	return &wizardLock{f: f, path: filepath.Join(dir, recordName)}, readRecord(root), nil
}

// start begins a new record for this console.
func (l *wizardLock) start(tty string, unattended bool, progress ...string) {
	l.rec = setupRecord{TTY: tty, PID: os.Getpid(), Unattended: unattended, Phase: phaseRunning}
	l.write(progress)
}

// write records the current progress lines.
func (l *wizardLock) write(progress []string) {
	if l == nil || l.f == nil {
		return
	}
	l.rec.Progress = progress
	l.save()
}

// failed records where and why setup stopped.
func (l *wizardLock) failed(step string, f *stepFailure) {
	if l == nil || l.f == nil {
		return
	}
	l.rec.Phase, l.rec.Step, l.rec.Kind, l.rec.Message, l.rec.Hint = phaseFailed, step, f.kind, f.msg, f.hint
	l.save()
}

// resume marks the setup running again (a retry after a failure).
func (l *wizardLock) resume() {
	if l == nil || l.f == nil {
		return
	}
	l.rec.Phase, l.rec.Step, l.rec.Kind, l.rec.Message, l.rec.Hint = phaseRunning, "", failOther, "", ""
	l.save()
}

func (l *wizardLock) save() {
	b, _ := json.Marshal(l.rec)
	tmp := l.path + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, l.path)
	}
}

// release gives up the lock. The record this lock started goes with it,
// except that of an unattended setup that failed: the consoles keep
// showing it. A lock that started no record leaves the file alone.
func (l *wizardLock) release() {
	if l == nil || l.f == nil {
		return
	}
	if l.rec.PID != 0 && !l.rec.stoppedUnattended() {
		os.Remove(l.path)
	}
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// readRecord reads the setup record; the zero record if there is none.
func readRecord(root string) setupRecord {
	var r setupRecord
	b, err := os.ReadFile(filepath.Join(root, runDir, recordName))
	if err != nil || json.Unmarshal(b, &r) != nil {
		return setupRecord{}
	}
	return r
}

// holderName is the record's console, for "Setup is running on ...".
func (r setupRecord) holderName() string {
	if r.TTY == "" {
		return "the other console"
	}
	return r.TTY
}

// otherHolder returns the record of another live console running the
// wizard, without touching the lock (taking it even briefly could turn
// away an operator starting setup there at that moment).
func otherHolder(root string) (setupRecord, bool) {
	r := readRecord(root)
	if r.TTY == "" || r.PID <= 0 || r.PID == os.Getpid() || r.stoppedUnattended() {
		return r, false
	}
	if err := unix.Kill(r.PID, 0); err != nil && err != unix.EPERM {
		return r, false // stale record of a console that is gone
	}
	return r, true
}

// ovfMark says whether the OVF settings were already applied unattended in
// this boot, and whether the OVF token was handed over then.
func ovfMark(root string) (attempted, tokenSent bool) {
	b, err := os.ReadFile(filepath.Join(root, runDir, ovfMarkName))
	if err != nil {
		return false, false
	}
	return true, string(b) == "token handed over\n"
}

// setOVFMark records an unattended attempt (and a token handed over).
func setOVFMark(root string, tokenSent bool) error {
	body := "attempted\n"
	if tokenSent {
		body = "token handed over\n"
	}
	return os.WriteFile(filepath.Join(root, runDir, ovfMarkName), []byte(body), 0o644)
}
