package boot

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/appliance/image"
)

// writePartition copies the file src to the start of the partition label
// of disk.
func writePartition(t *testing.T, disk string, m *image.Manifest, label, src string) {
	t.Helper()
	p, ok := m.Partition(label)
	if !ok {
		t.Fatalf("image.json has no %s", label)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(io.NewOffsetWriter(f, p.Offset), in); err != nil {
		t.Fatalf("writing %s: %v", label, err)
	}
}

// zeroPartitionStart zeroes the first n bytes of the partition label.
func zeroPartitionStart(t *testing.T, disk string, m *image.Manifest, label string, n int) {
	t.Helper()
	p, _ := m.Partition(label)
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), p.Offset); err != nil {
		t.Fatal(err)
	}
}

// TestBootSlotB: the UKI names its root by hash and verity UUID, not by
// slot, so the same UKI boots a root written to slot B, as an update
// bundle's UKI must. Slot A's verity superblock is wiped, so slot B is the
// only one holding the UUID.
func TestBootSlotB(t *testing.T) {
	src, man := builtDisk(t)
	if man.VerityUUID == "" || man.Slot.Root == "" {
		t.Skip("image.json has no verity_uuid or slot files: built before slot-agnostic UKIs; run `make image`")
	}
	root, verity, _ := man.Slot.Paths(filepath.Dir(src))
	disk := copyDisk(t, src)
	writePartition(t, disk, man, image.LabelRootB, root)
	writePartition(t, disk, man, image.LabelVerityB, verity)
	zeroPartitionStart(t, disk, man, image.LabelVerityA, 4096)
	writeConfigFiles(t, disk, man, map[string]string{"connector.yaml": testConfig})

	m, r := boot(t, disk, man)
	defer m.Kill()
	out := m.Output()
	if !strings.Contains(out, "vaultpam: opening verified root (slot B)") {
		t.Errorf("the initramfs did not open slot B:\n%s", tail(out, 3000))
	}
	if got := r["mount /"]; !strings.HasPrefix(got, "/dev/mapper/vroot squashfs ro") {
		t.Errorf("mount / = %q, want the verity root", got)
	}
	if got := r["verity"]; !strings.Contains(got, "verified") {
		t.Errorf("verity status = %q, want verified", got)
	}
	checkUnits(t, man, r)
}

// TestBootSameRootInBothSlots: both slots hold the same tree (same UUID);
// the initramfs checks each against the root hash in user space and boots
// the first that matches, here A (B's data has a flipped byte).
func TestBootSameRootInBothSlots(t *testing.T) {
	src, man := builtDisk(t)
	if man.VerityUUID == "" || man.Slot.Root == "" {
		t.Skip("image.json has no verity_uuid or slot files: built before slot-agnostic UKIs; run `make image`")
	}
	root, verity, _ := man.Slot.Paths(filepath.Dir(src))
	disk := copyDisk(t, src)
	writePartition(t, disk, man, image.LabelRootB, root)
	writePartition(t, disk, man, image.LabelVerityB, verity)
	pb, _ := man.Partition(image.LabelRootB)
	flipByte(t, disk, pb.Offset+100)
	writeConfigFiles(t, disk, man, map[string]string{"connector.yaml": testConfig})

	m, r := boot(t, disk, man)
	defer m.Kill()
	out := m.Output()
	for _, want := range []string{"both slots hold verity tree " + man.VerityUUID, "vaultpam: opening verified root (slot A)"} {
		if !strings.Contains(out, want) {
			t.Errorf("serial output lacks %q:\n%s", want, tail(out, 3000))
		}
	}
	if regexp.MustCompile(`verity: .*is corrupted`).MatchString(out) {
		t.Errorf("the corrupted slot B was read through dm-verity")
	}
	if got := r["mount /"]; !strings.HasPrefix(got, "/dev/mapper/vroot squashfs ro") {
		t.Errorf("mount / = %q, want the verity root", got)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
