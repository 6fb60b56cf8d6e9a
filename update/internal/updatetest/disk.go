package updatetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/update/slot"
)

// Disk is a GPT disk image laid out like the appliance's slots, CONFIG
// and DATA, written by sfdisk. Each partition is a loop device over its
// extent of the image when the machine allows (root, /dev/loop-control),
// else a file of the partition's size. Disk.Disk points slot.Disk at a
// fake /dev/disk/by-partlabel and /sys/block in a temporary directory.
type Disk struct {
	Image string
	Loop  bool              // partitions are loop devices
	Paths map[string]string // label → device or file
	Disk  slot.Disk
	root  string
}

// Partition sizes of the test disk, in MiB.
var diskLayout = []struct {
	label string
	mib   int
}{
	{"VPAM-ROOT-A", 4}, {"VPAM-VERITY-A", 1}, {"VPAM-ROOT-B", 4}, {"VPAM-VERITY-B", 1},
	{"VPAM-CONFIG", 1}, {"VPAM-DATA", 1},
}

// NewDisk makes the disk, fills slot A with im (the running image) and
// CONFIG and DATA with recognisable bytes, and marks slot A as running.
func NewDisk(t testing.TB, im Image) *Disk {
	t.Helper()
	NeedTools(t, "sfdisk")
	d := &Disk{root: t.TempDir(), Paths: map[string]string{}}
	d.Image = filepath.Join(d.root, "disk.raw")
	must(t, os.Truncate(createEmpty(t, d.Image), 16<<20))
	var script strings.Builder
	script.WriteString("label: gpt\n")
	for _, p := range diskLayout {
		fmt.Fprintf(&script, "size=%dMiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=%s\n", p.mib, p.label)
	}
	if out, err := runStdin(script.String(), "sfdisk", "-q", d.Image); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	parts := readTable(t, d.Image)
	d.Loop = loopWorks()
	byLabel := filepath.Join(d.root, "dev/disk/by-partlabel")
	must(t, os.MkdirAll(byLabel, 0o755))
	for _, p := range diskLayout {
		ext := parts[p.label]
		var path string
		if d.Loop {
			out, err := exec.Command("losetup", "--find", "--show", "--offset", fmt.Sprint(ext[0]), "--sizelimit", fmt.Sprint(ext[1]), d.Image).Output()
			if err != nil {
				t.Fatalf("losetup %s: %v", p.label, err)
			}
			path = strings.TrimSpace(string(out))
			t.Cleanup(func() { exec.Command("losetup", "-d", path).Run() })
		} else {
			path = filepath.Join(d.root, "parts", p.label)
			must(t, os.MkdirAll(filepath.Dir(path), 0o755))
			must(t, os.Truncate(createEmpty(t, path), ext[1]))
		}
		d.Paths[p.label] = path
		must(t, os.Symlink(path, filepath.Join(byLabel, p.label)))
	}
	d.Disk = slot.Disk{
		ByPartlabel: byLabel,
		ByUUID:      filepath.Join(d.root, "dev/disk/by-uuid"),
		SysBlock:    filepath.Join(d.root, "sys/block"),
		Cmdline:     filepath.Join(d.root, "proc/cmdline"),
		Mapper:      "vroot",
	}
	d.Fill(t, "VPAM-ROOT-A", im.Root)
	d.Fill(t, "VPAM-VERITY-A", im.Verity)
	d.WriteBytes(t, "VPAM-CONFIG", RandomBytes(1<<20, 6))
	d.WriteBytes(t, "VPAM-DATA", RandomBytes(1<<20, 7))
	d.SetRunning(t, slot.A)
	return d
}

func runStdin(in, name string, args ...string) ([]byte, error) {
	c := exec.Command(name, args...)
	c.Stdin = strings.NewReader(in)
	return c.CombinedOutput()
}

func createEmpty(t testing.TB, path string) string {
	f, err := os.Create(path)
	must(t, err)
	f.Close()
	return path
}

// readTable returns label → [offset, size] in bytes.
func readTable(t testing.TB, img string) map[string][2]int64 {
	out, err := exec.Command("sfdisk", "-J", img).Output()
	must(t, err)
	var tab struct {
		PartitionTable struct {
			SectorSize int64 `json:"sectorsize"`
			Partitions []struct {
				Start, Size int64
				Name        string
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	must(t, json.Unmarshal(out, &tab))
	ss := tab.PartitionTable.SectorSize
	if ss == 0 {
		ss = 512
	}
	m := map[string][2]int64{}
	for _, p := range tab.PartitionTable.Partitions {
		m[p.Name] = [2]int64{p.Start * ss, p.Size * ss}
	}
	return m
}

// loopWorks tells whether loop devices can be attached here.
func loopWorks() bool {
	if os.Geteuid() != 0 {
		return false
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return false
	}
	return exec.Command("losetup", "-f").Run() == nil
}

// SetRunning makes the fake /sys show the verity root on slot n's
// partitions (dm-0 named vroot, its slaves the slot's devices).
func (d *Disk) SetRunning(t testing.TB, n slot.Name) {
	t.Helper()
	dm := filepath.Join(d.Disk.SysBlock, "dm-0")
	os.RemoveAll(dm)
	must(t, os.MkdirAll(filepath.Join(dm, "dm"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dm, "slaves"), 0o755))
	must(t, os.WriteFile(filepath.Join(dm, "dm", "name"), []byte("vroot\n"), 0o644))
	for _, l := range []string{slot.RootLabel(n), slot.VerityLabel(n)} {
		must(t, os.WriteFile(filepath.Join(dm, "slaves", filepath.Base(d.Paths[l])), nil, 0o644))
	}
}

// Fill writes file's bytes at the start of partition label.
func (d *Disk) Fill(t testing.TB, label, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	must(t, err)
	d.WriteBytes(t, label, b)
}

// WriteBytes writes b at the start of partition label.
func (d *Disk) WriteBytes(t testing.TB, label string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(d.Paths[label], os.O_WRONLY, 0)
	must(t, err)
	_, err = f.Write(b)
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
}

// Read returns the whole content of partition label.
func (d *Disk) Read(t testing.TB, label string) []byte {
	t.Helper()
	b, err := os.ReadFile(d.Paths[label])
	must(t, err)
	return b
}

// Snapshot returns every partition's content.
func (d *Disk) Snapshot(t testing.TB) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for l := range d.Paths {
		m[l] = d.Read(t, l)
	}
	return m
}

// Unchanged reports the partitions of labels whose bytes differ from snap.
func (d *Disk) Unchanged(t testing.TB, snap map[string][]byte, labels ...string) {
	t.Helper()
	for _, l := range labels {
		if !bytes.Equal(d.Read(t, l), snap[l]) {
			t.Errorf("partition %s changed; it must be byte-identical", l)
		}
	}
}
