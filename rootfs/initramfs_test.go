package rootfs

import (
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// slotDisk is a fake disk for the initramfs script: the four slot
// partitions as files, named like /dev/disk/by-partlabel.
type slotDisk struct {
	dir  string // holds by-partlabel/, the script and its fakes
	real string // the real veritysetup
}

// writeSlot fills VPAM-ROOT-<slot> with random data and VPAM-VERITY-<slot>
// with its hash tree (superblock UUID uuid), and returns the root hash.
func (d *slotDisk) writeSlot(t *testing.T, slot, uuid string) string {
	t.Helper()
	data := filepath.Join(d.dir, "by-partlabel", "VPAM-ROOT-"+slot)
	f, err := os.Create(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(d.real, "format", "--uuid="+uuid, data, filepath.Join(d.dir, "by-partlabel", "VPAM-VERITY-"+slot)).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "Root hash:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no root hash in:\n%s", out)
	return ""
}

// run runs the local-top script with the command line given and returns
// what it printed and the slot it opened ("" for none).
func (d *slotDisk) run(t *testing.T, cmdline string) (output, opened string, code int) {
	t.Helper()
	os.RemoveAll(filepath.Join(d.dir, "opened"))
	os.RemoveAll(filepath.Join(d.dir, "run"))
	if err := os.WriteFile(filepath.Join(d.dir, "cmdline"), []byte(cmdline+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", filepath.Join(d.dir, "vaultpam-verity"))
	cmd.Env = []string{"PATH=" + filepath.Join(d.dir, "bin") + ":/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(d.dir, "opened"))
	opened = strings.TrimSpace(string(b))
	if opened != "" {
		slot, err := os.ReadFile(filepath.Join(d.dir, "run", "vaultpam-boot", "slot"))
		if err != nil || strings.TrimSpace(string(slot)) != opened[len(opened)-1:] {
			t.Errorf("/run/vaultpam-boot/slot = %q (%v) after opening %s", slot, err, opened)
		}
	}
	return string(out), opened, code
}

// newSlotDisk installs the script with its absolute paths pointed into a
// temporary directory (the initramfs's /scripts/functions, /proc/cmdline,
// /dev/disk/by-partlabel, /run), a fake `veritysetup open` that records
// what it was asked to open (device-mapper is not available here) and the
// real veritysetup for dump and verify.
func newSlotDisk(t *testing.T) *slotDisk {
	t.Helper()
	real, err := exec.LookPath("veritysetup")
	if err != nil {
		t.Skip("veritysetup is not installed (package cryptsetup-bin)")
	}
	d := &slotDisk{dir: t.TempDir(), real: real}
	script, err := files.ReadFile("initramfs/scripts/local-top/vaultpam-verity")
	if err != nil {
		t.Fatal(err)
	}
	s := string(script)
	for _, r := range [][2]string{
		{". /scripts/functions", ". " + filepath.Join(d.dir, "functions")},
		{"cat /proc/cmdline", "cat " + filepath.Join(d.dir, "cmdline")},
		{"part=/dev/disk/by-partlabel", "part=" + filepath.Join(d.dir, "by-partlabel")},
		{`[ ! -b "$dev" ]`, `[ ! -e "$dev" ]`}, // files stand in for the block devices
		{"/run/vaultpam-boot", filepath.Join(d.dir, "run", "vaultpam-boot")},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("the script no longer contains %q; update this test", r[0])
		}
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(d.dir, "vaultpam-verity"), []byte(s), 0o755))
	must(os.WriteFile(filepath.Join(d.dir, "functions"), []byte(`
panic() { echo "PANIC: $*"; exit 99; }
log_warning_msg() { echo "WARNING: $*"; }
log_begin_msg() { echo "BEGIN: $*"; }
log_end_msg() { echo "END"; }
`), 0o644))
	must(os.MkdirAll(filepath.Join(d.dir, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(d.dir, "bin", "veritysetup"), []byte(`#!/bin/sh
if [ "$1" = open ]; then
	echo "$(basename "$3") $(basename "$5")" >`+filepath.Join(d.dir, "opened")+`
	echo "open $*"
	exit 0
fi
exec `+real+` "$@"
`), 0o755))
	must(os.MkdirAll(filepath.Join(d.dir, "by-partlabel"), 0o755))
	// Empty slots: partitions of zeros, no verity superblock.
	for _, p := range []string{"VPAM-ROOT-A", "VPAM-VERITY-A", "VPAM-ROOT-B", "VPAM-VERITY-B"} {
		must(os.WriteFile(filepath.Join(d.dir, "by-partlabel", p), make([]byte, 64<<10), 0o644))
	}
	return d
}

const (
	uuidA = "0e4b7f2a-1c2d-8e3f-9a4b-5c6d7e8f9a0b"
	uuidB = "7d1c0b9a-8e7f-8a6b-9c5d-4e3f2a1b0c9d"
)

// TestInitramfsFindsSlotByVerityUUID: the same UKI (root hash + verity
// UUID, no slot) boots whichever slot its root was written to.
func TestInitramfsFindsSlotByVerityUUID(t *testing.T) {
	d := newSlotDisk(t)
	hashA := d.writeSlot(t, "A", uuidA)
	hashB := d.writeSlot(t, "B", uuidB)
	for _, tc := range []struct {
		cmdline, want string
	}{
		{"root=/dev/mapper/vroot vaultpam.roothash=" + hashA + " vaultpam.verity=" + uuidA + " panic=60", "VPAM-ROOT-A VPAM-VERITY-A"},
		{"root=/dev/mapper/vroot vaultpam.roothash=" + hashB + " vaultpam.verity=" + uuidB + " panic=60", "VPAM-ROOT-B VPAM-VERITY-B"},
		// A UKI built before vaultpam.verity= existed names its slot.
		{"vaultpam.roothash=" + hashB + " vaultpam.slot=B", "VPAM-ROOT-B VPAM-VERITY-B"},
		{"vaultpam.roothash=" + hashA, "VPAM-ROOT-A VPAM-VERITY-A"},
	} {
		out, opened, code := d.run(t, tc.cmdline)
		if code != 0 || opened != tc.want {
			t.Errorf("cmdline %q: opened %q (exit %d), want %q\n%s", tc.cmdline, opened, code, tc.want, out)
		}
	}
}

// TestInitramfsUUIDNowhere: a UKI whose root was overwritten stops with a
// message instead of opening a slot that would panic at the first read.
func TestInitramfsUUIDNowhere(t *testing.T) {
	d := newSlotDisk(t)
	hashA := d.writeSlot(t, "A", uuidA) // B stays empty
	out, opened, code := d.run(t, "vaultpam.roothash="+hashA+" vaultpam.verity="+uuidB)
	if code != 99 || opened != "" || !strings.Contains(out, "PANIC: vaultpam: no slot holds verity tree "+uuidB) {
		t.Errorf("exit %d, opened %q, output:\n%s", code, opened, out)
	}
	out, opened, code = d.run(t, "quiet")
	if code != 0 || opened != "" || !strings.Contains(out, "no vaultpam.roothash=") {
		t.Errorf("without a root hash: exit %d, opened %q, output:\n%s", code, opened, out)
	}
}

// TestInitramfsSameTreeInBothSlots: when both slots carry the UUID (the
// same image written twice, or one slot half rewritten), the slot whose
// data matches the root hash is used, checked in user space.
func TestInitramfsSameTreeInBothSlots(t *testing.T) {
	for _, good := range []string{"A", "B"} {
		d := newSlotDisk(t)
		hash := d.writeSlot(t, good, uuidA)
		bad := map[string]string{"A": "B", "B": "A"}[good]
		part := filepath.Join(d.dir, "by-partlabel")
		// The other slot: the same tree, but its data was changed.
		for _, p := range []string{"VPAM-ROOT-", "VPAM-VERITY-"} {
			b, err := os.ReadFile(filepath.Join(part, p+good))
			if err != nil {
				t.Fatal(err)
			}
			if p == "VPAM-ROOT-" {
				b[12345] ^= 0xff
			}
			if err := os.WriteFile(filepath.Join(part, p+bad), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, opened, code := d.run(t, "vaultpam.roothash="+hash+" vaultpam.verity="+uuidA)
		if want := "VPAM-ROOT-" + good + " VPAM-VERITY-" + good; code != 0 || opened != want {
			t.Errorf("good slot %s: opened %q (exit %d), want %q\n%s", good, opened, code, want, out)
		}
	}
}
