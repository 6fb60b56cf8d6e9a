package settings

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWriteFileAtomicFailedWriteKeepsOld: a write cut short (here by the
// file size limit, EFBIG) is an error and the old file stays as it was;
// a half-written connector.yaml must never replace a good one.
func TestWriteFileAtomicFailedWriteKeepsOld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "connector.yaml")
	if err := os.WriteFile(path, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("cannot read the file size limit: %v", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 1024, Max: old.Max}); err != nil {
		t.Skipf("cannot lower the file size limit: %v", err)
	}
	err := WriteFileAtomic(path, bytes.Repeat([]byte("x"), 4096), 0o640)
	if rerr := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatalf("restoring the file size limit: %v", rerr)
	}
	if err == nil {
		t.Fatal("WriteFileAtomic reported success for a write the file size limit cut short")
	}
	if got, _ := os.ReadFile(path); string(got) != "old\n" {
		t.Errorf("after the failed write the file holds %d bytes, want the old content", len(got))
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".connector.yaml.tmp*")); len(m) != 0 {
		t.Errorf("temporary files left behind: %v", m)
	}
}
