package cdrom

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// makeISO writes a real ISO 9660 image of tree with label, like the
// release's update ISO (genisoimage -J -r).
func makeISO(t *testing.T, tree, label string) string {
	t.Helper()
	if _, err := exec.LookPath("genisoimage"); err != nil {
		t.Skip("genisoimage is not installed (make deps)")
	}
	iso := filepath.Join(t.TempDir(), "update.iso")
	if out, err := exec.Command("genisoimage", "-quiet", "-J", "-r", "-V", label, "-o", iso, tree).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	return iso
}

func updateTree(t *testing.T, bundles ...string) string {
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "vaultpam-update", "metadata"), 0o755)
	os.WriteFile(filepath.Join(tree, "vaultpam-update", "metadata", "1.root.json"), []byte("{}"), 0o644)
	for _, b := range bundles {
		os.WriteFile(filepath.Join(tree, "vaultpam-update", b), []byte("bundle"), 0o644)
	}
	return tree
}

func TestVolumeLabel(t *testing.T) {
	iso := makeISO(t, updateTree(t, "vaultpam-connector-0.2.0.update"), Label)
	if got, err := VolumeLabel(iso); err != nil || got != Label {
		t.Errorf("VolumeLabel = %q, %v; want %s", got, err, Label)
	}
	other := makeISO(t, updateTree(t), "OVF-ENV")
	if got, _ := VolumeLabel(other); got != "OVF-ENV" {
		t.Errorf("VolumeLabel = %q, want OVF-ENV", got)
	}
	notISO := filepath.Join(t.TempDir(), "x")
	os.WriteFile(notISO, make([]byte, 64<<10), 0o644)
	if _, err := VolumeLabel(notISO); err == nil {
		t.Error("a non-ISO file has a label")
	}
}

// TestFind: drives are ISO files (the real label reader); mounting is
// done by a function that serves the tree the ISO was made from (this
// machine's kernel has no iso9660; the QEMU scenario mounts for real).
func TestFind(t *testing.T) {
	tree := updateTree(t, "vaultpam-connector-0.2.0.update")
	devs := t.TempDir()
	os.Symlink(makeISO(t, updateTree(t), "OVF-ENV"), filepath.Join(devs, "sr0"))
	os.Symlink(makeISO(t, tree, Label), filepath.Join(devs, "sr1"))
	mounts := 0
	mnt := filepath.Join(t.TempDir(), "cdrom")
	f := &Finder{Devices: filepath.Join(devs, "sr*"), MountDir: mnt,
		Mount: func(dev, dir string) error {
			mounts++
			if filepath.Base(dev) != "sr1" {
				t.Errorf("mounted %s, which is not the update medium", dev)
			}
			os.Remove(dir)
			return os.Symlink(tree, dir)
		},
		Unmount: func(dir string) error { return os.Remove(dir) },
	}
	m, err := f.Find()
	if err != nil {
		t.Fatal(err)
	}
	if m.Target != "vaultpam-connector-0.2.0.update" || m.MetadataDir != filepath.Join(mnt, "vaultpam-update", "metadata") || m.Bundle != filepath.Join(mnt, "vaultpam-update", m.Target) {
		t.Errorf("media = %+v", m)
	}
	if _, err := f.Find(); err != nil || mounts != 1 {
		t.Errorf("second Find: %v, %d mounts; want the medium reused", err, mounts)
	}
	os.Remove(filepath.Join(devs, "sr1")) // ejected
	if _, err := f.Find(); !errors.Is(err, ErrNone) {
		t.Errorf("after eject: %v, want ErrNone", err)
	}
	if _, err := os.Lstat(mnt); err == nil {
		t.Error("the ejected medium is still mounted")
	}
}

func TestTwoBundlesRefused(t *testing.T) {
	tree := updateTree(t, "vaultpam-connector-0.2.0.update", "vaultpam-connector-0.3.0.update")
	devs := t.TempDir()
	os.Symlink(makeISO(t, tree, Label), filepath.Join(devs, "sr0"))
	f := &Finder{Devices: filepath.Join(devs, "sr*"), MountDir: filepath.Join(t.TempDir(), "m"),
		Mount: func(dev, dir string) error { return os.Symlink(tree, dir) }, Unmount: os.Remove}
	if _, err := f.Find(); err == nil {
		t.Error("a medium with two bundles was accepted")
	} else {
		t.Log(err)
	}
}

// TestChangedMediumIsRemounted: the operator changes the ISO in the same
// drive (vSphere "change CD"): the device path stays, the volume
// descriptor changes, so Find unmounts the old medium and mounts the new
// one. Before the fix Find kept reading the old mount (on a real kernel a
// stale one, with I/O errors) until the drive was emptied.
func TestChangedMediumIsRemounted(t *testing.T) {
	first := updateTree(t, "vaultpam-connector-0.2.0.update")
	second := updateTree(t, "vaultpam-connector-0.3.0.update")
	devs := t.TempDir()
	dev := filepath.Join(devs, "sr0")
	iso1 := makeISO(t, first, Label)
	os.Symlink(iso1, dev)
	mnt := filepath.Join(t.TempDir(), "cdrom")
	trees := map[string]string{iso1: first}
	var mounts, unmounts int
	f := &Finder{Devices: filepath.Join(devs, "sr*"), MountDir: mnt,
		Mount: func(d, dir string) error {
			mounts++
			target, _ := os.Readlink(d)
			os.Remove(dir)
			return os.Symlink(trees[target], dir)
		},
		Unmount: func(dir string) error { unmounts++; return os.Remove(dir) }}
	m, err := f.Find()
	if err != nil || m.Target != "vaultpam-connector-0.2.0.update" {
		t.Fatalf("Find = %+v, %v", m, err)
	}
	if m, err = f.Find(); err != nil || mounts != 1 {
		t.Fatalf("the same medium again: %+v, %v, %d mounts; want it reused", m, err, mounts)
	}
	iso2 := makeISO(t, second, Label)
	trees[iso2] = second
	os.Remove(dev)
	os.Symlink(iso2, dev)
	m, err = f.Find()
	if err != nil || m.Target != "vaultpam-connector-0.3.0.update" || mounts != 2 || unmounts != 1 {
		t.Errorf("after the change: %+v, %v (%d mounts, %d unmounts); want the new medium mounted", m, err, mounts, unmounts)
	}
}
