package console

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Only one console runs the wizard at a time: it holds an flock on
// /run/vaultpam-console/wizard.lock and writes its progress next to it, so
// the other console can say "Setup is running on ttyS0" and follow along.
const (
	runDir       = "run/vaultpam-console"
	lockName     = "wizard.lock"
	progressName = "wizard.progress"
)

type wizardLock struct {
	f        *os.File
	progress string
}

// tryLock takes the wizard lock, or returns the holder's tty and progress.
func tryLock(root, tty string) (l *wizardLock, holder string, progress []string, err error) {
	dir := filepath.Join(root, runDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, "", nil, fmt.Errorf("opening wizard lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		holder, progress := readProgress(root)
		return nil, holder, progress, nil
	}
	l = &wizardLock{f: f, progress: filepath.Join(dir, progressName)}
	l.write(tty, []string{"Starting setup"})
	return l, "", nil, nil
}

// write records the holder and its current progress lines.
func (l *wizardLock) write(tty string, lines []string) {
	if l == nil {
		return
	}
	body := fmt.Sprintf("%s\n%d\n%s\n", tty, os.Getpid(), strings.Join(lines, "\n"))
	tmp := l.progress + ".tmp"
	if os.WriteFile(tmp, []byte(body), 0o644) == nil {
		os.Rename(tmp, l.progress)
	}
}

func (l *wizardLock) release() {
	if l == nil || l.f == nil {
		return
	}
	os.Remove(l.progress)
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}

func readProgress(root string) (holder string, lines []string) {
	holder, _, lines = progressFile(root)
	if holder == "" {
		holder = "the other console"
	}
	return holder, lines
}

// progressFile reads the holder's tty, process ID and progress lines.
func progressFile(root string) (tty string, pid int, lines []string) {
	b, err := os.ReadFile(filepath.Join(root, runDir, progressName))
	if err != nil {
		return "", 0, nil
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) < 2 {
		return "", 0, nil
	}
	pid, _ = strconv.Atoi(all[1])
	return all[0], pid, all[2:]
}

// otherHolder returns the tty of another live console running the wizard,
// without touching the lock (taking it even briefly could turn away an
// operator starting setup there at that moment).
func otherHolder(root string) (string, bool) {
	tty, pid, _ := progressFile(root)
	if tty == "" || pid <= 0 || pid == os.Getpid() {
		return "", false
	}
	if err := unix.Kill(pid, 0); err != nil && err != unix.EPERM {
		return "", false // stale file of a console that is gone
	}
	return tty, true
}
