package shapetest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Podman runs rootful podman with storage of its own in a temporary
// directory, so a test neither sees nor leaves images and containers in
// the machine's storage.
//
// Engine settings (containers.conf in the same directory): cgroupfs and
// runc, because this build machine runs no systemd and has hybrid cgroups
// that crun refuses ("cgroups in hybrid mode not supported"); RLIMIT_NOFILE
// and RLIMIT_NPROC at 1024, because raising them above the machine's hard
// limit fails with EPERM inside the runtime. Both are harmless elsewhere.
type Podman struct {
	dir  string
	args []string
	env  []string
}

// NewPodman skips t when podman cannot run containers here and says why.
func NewPodman(t testing.TB) *Podman {
	t.Helper()
	if testing.Short() {
		t.Skip("runs containers (-short: make unit skips them, make test runs them)")
	}
	if os.Geteuid() != 0 {
		t.Skip("podman tests run rootful: run them as root (make test does)")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed (make deps installs it for the tests)")
	}
	d, err := os.MkdirTemp("", "vaultpam-podman-")
	if err != nil {
		t.Fatal(err)
	}
	conf := "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\n"
	if _, err := exec.LookPath("runc"); err == nil {
		conf += "runtime = \"runc\"\n"
	}
	if err := os.WriteFile(filepath.Join(d, "containers.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Podman{dir: d,
		args: []string{"--root", filepath.Join(d, "storage"), "--runroot", filepath.Join(d, "run"), "--tmpdir", filepath.Join(d, "tmp"), "--storage-driver", "overlay"},
		env:  append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(d, "containers.conf"))}
	t.Cleanup(func() {
		p.Run("rm", "-a", "-f", "-t", "0")
		p.Run("volume", "prune", "-f")
		p.Run("rmi", "-a", "-f")
		// Overlay mounts of the storage go away with the containers;
		// anything left mounted keeps the directory, which is harmless.
		exec.Command("umount", "-R", filepath.Join(d, "storage", "overlay")).Run()
		os.RemoveAll(d)
	})
	return p
}

// Run runs podman with args and returns its stdout, stderr and error.
func (p *Podman) Run(args ...string) (string, string, error) {
	return p.RunStdin("", args...)
}

// RunStdin is Run with stdin.
func (p *Podman) RunStdin(stdin string, args ...string) (string, string, error) {
	return p.RunEnv(nil, stdin, args...)
}

// RunEnv is RunStdin with variables added to podman's environment: a
// secret goes to the container with `-e NAME` (no value), so it is in
// neither podman's argv nor the test's messages.
func (p *Podman) RunEnv(env []string, stdin string, args ...string) (string, string, error) {
	cmd := exec.Command("podman", append(append([]string{}, p.args...), args...)...)
	cmd.Env = append(append([]string{}, p.env...), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()), err
}

// Must is Run failing the test on error.
func (p *Podman) Must(t testing.TB, args ...string) string {
	t.Helper()
	out, errb, err := p.Run(args...)
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, errb)
	}
	return out
}
