package shapetest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A fresh Debian bookworm for package tests: systemd, apt, the cloud
// kernel (so QEMU can boot it), nothing of ours.
var debianPackages = []string{"systemd-sysv", "dbus", "udev", "linux-image-cloud-amd64", "ca-certificates"}

const (
	debianSuite  = "bookworm"
	debianMirror = "http://deb.debian.org/debian"
)

// DebianTarball returns a tarball of a fresh bookworm made by mmdebstrap,
// cached by its package list in the build cache (build/cache/shapes, or
// $VAULTPAM_BUILD/cache/shapes), so only the first run fetches packages
// (about two minutes here). It skips t when that cannot be done.
func DebianTarball(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("building a Debian system needs root (mmdebstrap --mode=root)")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("mmdebstrap is not installed (make deps installs it)")
	}
	build := os.Getenv("VAULTPAM_BUILD")
	if build == "" {
		build = filepath.Join(RepoRoot(t), "build")
	}
	cache := filepath.Join(build, "cache", "shapes")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(debianSuite + "\n" + debianMirror + "\n" + strings.Join(debianPackages, ",")))
	out := filepath.Join(cache, "bookworm-"+hex.EncodeToString(sum[:6])+".tar")
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() {
		return out
	}
	start := time.Now()
	// mmdebstrap picks its output format from the name: keep ".tar".
	tmp := strings.TrimSuffix(out, ".tar") + ".partial.tar"
	cmd := exec.Command("mmdebstrap", "--mode=root", "--variant=apt", "--include="+strings.Join(debianPackages, ","), debianSuite, tmp, debianMirror)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("mmdebstrap: %v\n%s", err, tail(string(b), 3000))
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	t.Logf("made %s in %s", out, time.Since(start).Round(time.Second))
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
