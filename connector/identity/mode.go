package identity

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Runtime modes (status JSON "mode").
const (
	ModeAutonomousRestart = "autonomous_restart"
	ModeGuidedRecovery    = "guided_recovery"
)

// File system magic numbers that mean "gone at reboot".
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// StatFS returns the file system type magic of path (statfs f_type).
type StatFS func(path string) (int64, error)

// StatFSUnix is the real StatFS.
func StatFSUnix(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Type), nil
}

// Mode is the result of DetectMode.
type Mode struct {
	Name    string // ModeAutonomousRestart or ModeGuidedRecovery
	Durable bool
	FSType  string // "tmpfs", "ramfs" or "0x…" magic
}

// DetectMode tells the runtime mode from the file system holding dir:
// tmpfs and ramfs do not survive a restart, so the connector runs in
// guided recovery mode there; anything else is taken as durable. statfs
// nil means StatFSUnix. dir must exist.
func DetectMode(dir string, statfs StatFS) (Mode, error) {
	if statfs == nil {
		statfs = StatFSUnix
	}
	t, err := statfs(dir)
	if err != nil {
		return Mode{}, fmt.Errorf("checking data directory %s: %w", dir, err)
	}
	switch uint32(t) {
	case tmpfsMagic:
		return Mode{Name: ModeGuidedRecovery, FSType: "tmpfs"}, nil
	case ramfsMagic:
		return Mode{Name: ModeGuidedRecovery, FSType: "ramfs"}, nil
	}
	return Mode{Name: ModeAutonomousRestart, Durable: true, FSType: fmt.Sprintf("0x%x", uint32(t))}, nil
}
