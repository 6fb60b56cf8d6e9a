package vmdisk

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testDisk makes a 48 MiB GPT disk: CONF (ext4, 16 MiB) and DATA (16 MiB,
// filled with a pattern).
func testDisk(t *testing.T) string {
	t.Helper()
	need(t, "sfdisk", "mkfs.ext4", "debugfs")
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 48<<20); err != nil {
		t.Fatal(err)
	}
	layout := "label: gpt\nstart=2048, size=32768, name=CONF\nstart=34816, size=32768, name=DATA\n"
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", disk)
	cmd.Stdin = strings.NewReader(layout)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	run(t, "mkfs.ext4", "-q", "-F", "-E", "offset=1048576", disk, "16M")
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte("data"), 4<<20), 34816*512); err != nil {
		t.Fatal(err)
	}
	return disk
}

func TestWriteFilesAndWipe(t *testing.T) {
	disk := testDisk(t)
	if err := WriteFiles(disk, "CONF", map[string]string{"ca.pem": "first"}); err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	if err := WriteFiles(disk, "CONF", map[string]string{"ca.pem": "-----BEGIN CERTIFICATE-----\n"}); err != nil {
		t.Fatalf("WriteFiles over an existing file: %v", err)
	}
	p, err := Partition(disk, "CONF")
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(t.TempDir(), "conf.img")
	if err := copyRange(disk, part, p.Offset(), p.Size()); err != nil {
		t.Fatal(err)
	}
	if got := run(t, "debugfs", "-R", "cat ca.pem", part); !strings.Contains(got, "-----BEGIN CERTIFICATE-----") || strings.Contains(got, "first") {
		t.Errorf("ca.pem on CONF = %q, want the second content only", got)
	}
	if got := run(t, "debugfs", "-R", "stat ca.pem", part); !strings.Contains(got, "Mode:  0644") {
		t.Errorf("ca.pem's inode = %s, want mode 0644", got)
	}

	if zero, err := IsZero(disk, "DATA"); err != nil || zero {
		t.Fatalf("IsZero(DATA) before the wipe = %v, %v; want false", zero, err)
	}
	if err := Wipe(disk, "DATA"); err != nil {
		t.Fatalf("Wipe: %v", err)
	}
	if zero, err := IsZero(disk, "DATA"); err != nil || !zero {
		t.Errorf("IsZero(DATA) after the wipe = %v, %v; want true", zero, err)
	}
	if zero, _ := IsZero(disk, "CONF"); zero {
		t.Errorf("the wipe of DATA zeroed CONF too")
	}
	if _, err := Partition(disk, "NOPE"); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("Partition(NOPE) = %v, want an error naming it", err)
	}
}

// TestFromOVA puts a streamOptimized VMDK made by qemu-img into a tar (an
// OVA's layout) and gets the same bytes back as raw.
func TestFromOVA(t *testing.T) {
	need(t, "qemu-img")
	disk := testDisk(t)
	dir := t.TempDir()
	vmdk := filepath.Join(dir, "x-disk1.vmdk")
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", disk, vmdk)
	ova := filepath.Join(dir, "x.ova")
	f, err := os.Create(ova)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, m := range []struct{ name, path string }{{"x.ovf", ""}, {"x-disk1.vmdk", vmdk}} {
		data := []byte("<Envelope/>")
		if m.path != "" {
			if data, err = os.ReadFile(m.path); err != nil {
				t.Fatal(err)
			}
		}
		tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(data))})
		tw.Write(data)
	}
	tw.Close()
	f.Close()

	raw := filepath.Join(dir, "back.raw")
	if err := FromOVA(ova, raw); err != nil {
		t.Fatalf("FromOVA: %v", err)
	}
	run(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", disk, raw)
	if _, err := os.Stat(raw + ".vmdk"); err == nil {
		t.Errorf("FromOVA left the extracted VMDK behind")
	}
	if err := FromOVA(disk, filepath.Join(dir, "none.raw")); err == nil {
		t.Errorf("FromOVA on a file that is no OVA = nil error")
	}
}
