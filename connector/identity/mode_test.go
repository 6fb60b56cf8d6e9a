package identity

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDetectModeMagic(t *testing.T) {
	for _, tc := range []struct {
		magic   int64
		mode    string
		durable bool
		fs      string
	}{
		{0x01021994, ModeGuidedRecovery, false, "tmpfs"},
		{0x858458f6, ModeGuidedRecovery, false, "ramfs"},
		{0xef53, ModeAutonomousRestart, true, "0xef53"},
		{0x9123683e, ModeAutonomousRestart, true, "0x9123683e"}, // btrfs
	} {
		m, err := DetectMode("/x", func(string) (int64, error) { return tc.magic, nil })
		if err != nil || m.Name != tc.mode || m.Durable != tc.durable || m.FSType != tc.fs {
			t.Errorf("DetectMode(magic %#x) = %+v, %v; want %s durable=%v %s", tc.magic, m, err, tc.mode, tc.durable, tc.fs)
		}
	}
	if _, err := DetectMode("/x", func(string) (int64, error) { return 0, errors.New("no") }); err == nil {
		t.Error("DetectMode ignored a statfs error")
	}
}

// On a real tmpfs mount the real statfs says guided recovery.
func TestDetectModeRealTmpfs(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("mounting a tmpfs needs root (and is skipped by -short, as in make unit)")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount tmpfs here: %v", err)
	}
	defer unix.Unmount(dir, 0)
	m, err := DetectMode(dir, nil)
	if err != nil || m.Name != ModeGuidedRecovery || m.FSType != "tmpfs" {
		t.Fatalf("DetectMode(tmpfs) = %+v, %v", m, err)
	}
	var st unix.Statfs_t
	unix.Statfs(t.TempDir(), &st)
	if st.Type != 0x01021994 {
		m, err := DetectMode(t.TempDir(), nil)
		if err != nil || !m.Durable {
			t.Fatalf("DetectMode(%s) = %+v, %v; want durable", os.TempDir(), m, err)
		}
	}
}
