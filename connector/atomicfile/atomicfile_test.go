package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteReplacesWithMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new content"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "new content" || st.Mode().Perm() != 0o600 {
		t.Errorf("file = %q mode %v, want %q mode 0600", b, st.Mode().Perm(), "new content")
	}
}

// TestFailAtEveryStep: a failure before the rename leaves the old file and
// no temporary file; from the rename on, the new file is in place.
func TestFailAtEveryStep(t *testing.T) {
	boom := errors.New("boom")
	for s := Step(0); s < NumSteps; s++ {
		t.Run(s.String(), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			os.WriteFile(p, []byte("old"), 0o600)
			err := Write(p, []byte("new"), Options{BeforeStep: func(at Step) error {
				if at == s {
					return boom
				}
				return nil
			}})
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), s.String()) {
				t.Fatalf("Write = %v, want boom at %s", err, s)
			}
			b, _ := os.ReadFile(p)
			want := "old"
			if s > StepRename {
				want = "new"
			}
			if string(b) != want {
				t.Errorf("after a failure at %s the file holds %q, want %q", s, b, want)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, TempPrefix(p)+"*")); len(m) != 0 {
				t.Errorf("temporary files left: %v", m)
			}
		})
	}
}

// TestShortWriteKeepsOld: a write cut short (RLIMIT_FSIZE) is reported and
// the half-written temporary file never replaces the old one.
func TestShortWriteKeepsOld(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("old"), 0o600)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	lim := old
	lim.Cur = 1024
	// SIGXFSZ would kill the test; ignore it so write(2) returns EFBIG.
	signalIgnoreXFSZ()
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip(err)
	}
	err := WriteFile(p, make([]byte, 4096), 0o600)
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	if err == nil {
		t.Fatal("WriteFile of 4 KiB under a 1 KiB file size limit succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("file = %q after a failed write, want the old content", b)
	}
}

func TestMkdirAll(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "f")
	if err := Write(p, []byte("x"), Options{Perm: 0o600, MkdirAll: true}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Dir(p))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode = %v (%v), want 0700 for a private file", st.Mode().Perm(), err)
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f[1]")
	stale := filepath.Join(dir, TempPrefix(p)+"123")
	other := filepath.Join(dir, "unrelated")
	os.WriteFile(stale, nil, 0o600)
	os.WriteFile(other, nil, 0o600)
	RemoveTemps(p)
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale temporary file kept")
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("unrelated file removed")
	}
}
