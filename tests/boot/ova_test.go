package boot

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/vaultpam/appliance/appliance/ova"
	"github.com/vaultpam/appliance/appliance/ovf"
	"github.com/vaultpam/appliance/tests/qemu"
)

// TestBootFromOVA builds the OVA from the real appliance disk, takes the
// VMDK back out of the archive, checks it against the raw disk with
// qemu-img, and boots it (converted back to raw) under OVMF to multi-user.
func TestBootFromOVA(t *testing.T) {
	diskPath := os.Getenv("VAULTPAM_DISK")
	if diskPath == "" {
		t.Skip("VAULTPAM_DISK not set; run `make image` (make test sets it)")
	}
	if _, err := os.Stat(diskPath); err != nil {
		t.Skipf("VAULTPAM_DISK: %v; run `make image`", err)
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (package qemu-utils)")
	}
	qemu.SkipIfUnavailable(t)

	dir := t.TempDir()
	ovaPath := filepath.Join(dir, "appliance.ova")
	oc := ovf.DefaultConfig()
	oc.Version, oc.FullVersion = "1.2.3", "1.2.3"
	cfg := &ova.Config{Name: "vaultpam-connector-1.2.3", OVF: oc, ModTime: time.Unix(1767225600, 0), TempDir: t.TempDir()}
	res, err := ova.BuildFile(context.Background(), ovaPath, diskPath, cfg)
	if err != nil {
		t.Fatalf("BuildFile: %v", err)
	}
	t.Logf("OVA %d MiB (VMDK %d MiB, %d grains stored, %d zero)", res.Size>>20, res.Disk.Size>>20, res.Disk.Grains, res.Disk.ZeroGrains)

	f, err := os.Open(ovaPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vmdkPath := filepath.Join(dir, "disk1.vmdk")
	if err := extractMember(f, res.DiskName, vmdkPath); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "-f", "vmdk", vmdkPath},
		{"compare", "-f", "raw", "-F", "vmdk", diskPath, vmdkPath},
	} {
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %s: %v\n%s", args[0], err, out)
		}
	}
	bootRaw := filepath.Join(dir, "boot.raw")
	if out, err := exec.Command("qemu-img", "convert", "-f", "vmdk", "-O", "raw", vmdkPath, bootRaw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	os.Remove(vmdkPath)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c := qemu.DefaultConfig(bootRaw)
	logFile, err := os.Create(filepath.Join(dir, "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	c.Log = logFile
	m, err := qemu.Start(ctx, c)
	if err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	defer m.Kill()
	if _, err := m.Expect(regexp.MustCompile(`Reached target .*Multi-User System`), 10*time.Minute); err != nil {
		t.Fatalf("the disk from the OVA did not reach multi-user: %v", err)
	}
	t.Logf("disk from the OVA reached multi-user %s after QEMU started", m.Since().Round(100*time.Millisecond))
}

// extractMember copies the OVA (tar) member name to path.
func extractMember(r io.Reader, name, path string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s: %w", name, os.ErrNotExist)
		}
		if err != nil {
			return err
		}
		if h.Name != name {
			continue
		}
		out, err := os.Create(path)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
}
