package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LockFileName is the lock file in the data directory: one connector per
// data directory.
const LockFileName = "connector.lock"

// DirLock holds a data directory for this process (flock). The kernel
// releases it when the process ends, however it ends.
type DirLock struct{ f *os.File }

// InUseError means another process holds the data directory.
type InUseError struct {
	Dir string
	PID int // 0 when unknown
}

func (e *InUseError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("another vaultpam-connector (PID %d) is running with the data directory %s", e.PID, e.Dir)
	}
	return fmt.Sprintf("another vaultpam-connector is running with the data directory %s", e.Dir)
}

// LockDir takes dir's lock file for this process, or fails with an
// *InUseError naming the holder's PID (written into the lock file by the
// holder). Two connectors on one data directory would enrol, renew and
// save over each other, and the second would take over the first's local
// API socket.
func LockDir(dir string) (*DirLock, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
			return nil, &InUseError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &DirLock{f}, nil
}

// Close releases the lock.
func (l *DirLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	return l.f.Close()
}
