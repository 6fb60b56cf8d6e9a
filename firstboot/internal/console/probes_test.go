package console

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vaultpam/appliance/firstboot/internal/privileged"
)

// verityHelper is the helper's verity read: out, or err.
type verityHelper struct {
	Privileged
	out []byte
	err error
}

func (v verityHelper) VerityStatus(context.Context) ([]byte, error) { return v.out, v.err }

var _ Privileged = (*privileged.Client)(nil)

// The verity line: the root hash from the kernel command line, the status
// the helper read with dmsetup, and why it is unknown when the helper
// could not say.
func TestVerityState(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/cmdline"), []byte("console=ttyS0 vaultpam.roothash=640072d310beb40b1842418bafe43a79 ro\n"), 0o644)
	for _, tc := range []struct {
		name string
		p    verityHelper
		want string
	}{
		{"verified", verityHelper{out: []byte("vroot: 0 188504 verity V\n")}, "on, no corruption seen (root hash 640072d310be...)"},
		{"corrupted", verityHelper{out: []byte("vroot: 0 188504 verity C\n")}, "CORRUPTION DETECTED (root hash 640072d310be...)"},
		{"no device", verityHelper{out: []byte("No devices found\n")}, "root hash 640072d310be..., no verity device"},
		{"helper away", verityHelper{err: &privileged.Error{Code: "unreachable", Message: "the console helper is not reachable at /run/x.sock: connect: no such file or directory"}},
			"root hash 640072d310be..., status unknown: the console helper is not reachable at /run/x.sock: connect: no such file or directory"},
		{"timeout", verityHelper{err: context.DeadlineExceeded}, "root hash 640072d310be..., status unknown: " + context.DeadlineExceeded.Error()},
	} {
		env := &Env{Root: root, Privileged: tc.p}
		if got := verityState(context.Background(), env); got != tc.want {
			t.Errorf("%s: verityState = %q, want %q", tc.name, got, tc.want)
		}
	}
	env := &Env{Root: t.TempDir(), Privileged: verityHelper{err: errors.New("not asked")}}
	if got := verityState(context.Background(), env); got != "off (no root hash on the kernel command line)" {
		t.Errorf("without a root hash: %q", got)
	}
}
