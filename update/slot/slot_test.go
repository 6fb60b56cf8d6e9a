package slot_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vaultpam/appliance/update/internal/updatetest"
	"github.com/vaultpam/appliance/update/slot"
)

func TestRunning(t *testing.T) {
	im := updatetest.MakeImage(t, "0.1.0", 1<<20)
	d := updatetest.NewDisk(t, im)
	if n, err := d.Disk.Running(); err != nil || n != slot.A {
		t.Errorf("Running = %s, %v; want A", n, err)
	}
	d.SetRunning(t, slot.B)
	if n, err := d.Disk.Running(); err != nil || n != slot.B {
		t.Errorf("Running = %s, %v; want B", n, err)
	}
	// Without the dm device: the initramfs's record.
	os.RemoveAll(d.Disk.SysBlock)
	d.Disk.BootRecord = filepath.Join(t.TempDir(), "slot")
	os.WriteFile(d.Disk.BootRecord, []byte("B\n"), 0o644)
	if n, err := d.Disk.Running(); err != nil || n != slot.B {
		t.Errorf("Running from the boot record = %s, %v; want B", n, err)
	}
	os.Remove(d.Disk.BootRecord)
	// Then the command line.
	os.MkdirAll(filepath.Dir(d.Disk.Cmdline), 0o755)
	os.WriteFile(d.Disk.Cmdline, []byte("root=/dev/mapper/vroot vaultpam.slot=A\n"), 0o644)
	if n, err := d.Disk.Running(); err != nil || n != slot.A {
		t.Errorf("Running from vaultpam.slot = %s, %v", n, err)
	}
	os.MkdirAll(d.Disk.ByUUID, 0o755)
	os.Symlink(d.Paths["VPAM-VERITY-B"], filepath.Join(d.Disk.ByUUID, "4c242725-f24c-4159-8bb3-3c531836bd3a"))
	os.WriteFile(d.Disk.Cmdline, []byte("vaultpam.verity=4C242725-F24C-4159-8BB3-3C531836BD3A\n"), 0o644)
	if n, err := d.Disk.Running(); err != nil || n != slot.B {
		t.Errorf("Running from vaultpam.verity = %s, %v", n, err)
	}
	os.WriteFile(d.Disk.Cmdline, []byte("quiet\n"), 0o644)
	if _, err := d.Disk.Running(); err == nil {
		t.Error("Running with no clue succeeded")
	}
}

func TestWritePart(t *testing.T) {
	im := updatetest.MakeImage(t, "0.1.0", 1<<20)
	d := updatetest.NewDisk(t, im)
	s, err := d.Disk.Slot(slot.B)
	if err != nil {
		t.Fatal(err)
	}
	if s.Root.Size != 4<<20 || s.Verity.Size != 1<<20 {
		t.Errorf("sizes %d %d", s.Root.Size, s.Verity.Size)
	}
	data := updatetest.RandomBytes(3<<20, 1)
	if err := slot.WritePart(s.Root, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if got := d.Read(t, "VPAM-ROOT-B"); !bytes.Equal(got[:len(data)], data) {
		t.Error("written bytes differ")
	}
	if err := slot.WritePart(s.Verity, bytes.NewReader(data), int64(len(data))); !errors.Is(err, slot.ErrTooBig) {
		t.Errorf("too big = %v", err)
	}
	if err := slot.WritePart(s.Root, bytes.NewReader(data[:10]), int64(len(data))); err == nil {
		t.Error("a short part was accepted")
	}
}

// TestInUseDeviceRefused: a block device held by someone else (as
// dm-verity holds the running slot's) cannot be opened for writing.
func TestInUseDeviceRefused(t *testing.T) {
	im := updatetest.MakeImage(t, "0.1.0", 1<<20)
	d := updatetest.NewDisk(t, im)
	if !d.Loop {
		t.Skip("partitions are files here (no loop devices): O_EXCL has no meaning for files")
	}
	a, _ := d.Disk.Slot(slot.A)
	holder, err := os.OpenFile(a.Root.Path, os.O_RDONLY|syscall.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	before := d.Read(t, "VPAM-ROOT-A")
	err = slot.WritePart(a.Root, bytes.NewReader([]byte("x")), 1)
	if !errors.Is(err, syscall.EBUSY) {
		t.Errorf("WritePart on a held device = %v, want EBUSY", err)
	}
	if !bytes.Equal(before, d.Read(t, "VPAM-ROOT-A")) {
		t.Error("the held device changed")
	}
}

func TestVerify(t *testing.T) {
	im := updatetest.MakeImage(t, "0.1.0", 1<<20)
	d := updatetest.NewDisk(t, im)
	a, _ := d.Disk.Slot(slot.A)
	if err := slot.Verify(t.Context(), "", a, im.RootHash); err != nil {
		t.Errorf("Verify of slot A = %v", err)
	}
	b := d.Read(t, "VPAM-ROOT-A")[:1<<20]
	b[4096*100] ^= 1
	d.WriteBytes(t, "VPAM-ROOT-A", b)
	if err := slot.Verify(t.Context(), "", a, im.RootHash); err == nil {
		t.Error("a flipped byte verified")
	}
}
