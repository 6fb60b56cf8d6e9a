// Package boot holds the appliance image tests: the partition table, the
// dm-verity tree, and boots of the raw disk in QEMU (OVMF, TCG) driven over
// the serial console. They use VAULTPAM_DISK (made by `make image`) and skip
// with a reason when it is missing.
package boot

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/appliance/image"
)

// builtDisk returns VAULTPAM_DISK and its image.json, or skips.
func builtDisk(t *testing.T) (string, *image.Manifest) {
	t.Helper()
	disk := os.Getenv("VAULTPAM_DISK")
	if disk == "" {
		t.Skip("VAULTPAM_DISK is not set; run `make image` (make test sets it)")
	}
	if _, err := os.Stat(disk); err != nil {
		t.Skipf("VAULTPAM_DISK %s is missing; run `make image`", disk)
	}
	m, err := image.ReadManifest(filepath.Join(filepath.Dir(disk), "image.json"))
	if err != nil {
		t.Fatalf("reading image.json next to the disk: %v", err)
	}
	return disk, m
}

func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (package %s)", name, pkg)
	}
}

// copyDisk makes a sparse copy of disk that the test may change.
func copyDisk(t *testing.T, disk string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("cp", "--sparse=always", disk, dst).CombinedOutput(); err != nil {
		t.Fatalf("copying the disk: %v\n%s", err, out)
	}
	return dst
}

// extract copies size bytes at off of disk into a new file.
func extract(t *testing.T, disk string, off, size int64, name string) string {
	t.Helper()
	src, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(t.TempDir(), name)
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, io.NewSectionReader(src, off, size)); err != nil {
		t.Fatalf("extracting %s: %v", name, err)
	}
	return dst
}

// flipByte inverts the byte at off of path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// writeConfigFiles puts files (name → content) into the root directory of
// the CONFIG partition of disk, with debugfs on an extracted copy.
func writeConfigFiles(t *testing.T, disk string, m *image.Manifest, files map[string]string) {
	t.Helper()
	needTool(t, "debugfs", "e2fsprogs")
	p, ok := m.Partition(image.LabelConfig)
	if !ok {
		t.Fatal("image.json has no VPAM-CONFIG partition")
	}
	part := extract(t, disk, p.Offset, p.Size, "config.img")
	dir := t.TempDir()
	for name, content := range files {
		src := filepath.Join(dir, name)
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("debugfs", "-w", "-R", fmt.Sprintf("write %s %s", src, name), part)
		if out, err := cmd.CombinedOutput(); err != nil || bytes.Contains(out, []byte("rror")) {
			t.Fatalf("debugfs write %s: %v\n%s", name, err, out)
		}
	}
	data, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, p.Offset); err != nil {
		t.Fatal(err)
	}
}

// run runs a command and returns its combined output and error.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
