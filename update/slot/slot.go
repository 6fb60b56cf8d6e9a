// Package slot knows the appliance's two root slots: which one runs, where
// each slot's partitions are (found by GPT label), and how to write a part
// into a partition of the slot that does not run and check it with
// `veritysetup verify`.
//
// A slot is a pair of partitions, VPAM-ROOT-<slot> (the squashfs root) and
// VPAM-VERITY-<slot> (its dm-verity hash tree). The running slot is the one
// under the dm-verity device the initramfs opened ("vroot"): its
// /sys/block/dm-N/slaves are the slot's two partitions. When that cannot be
// read, the initramfs's record says it (/run/vaultpam-boot/slot), else the
// kernel command line (vaultpam.verity=<uuid> of the hash partition, or the
// older vaultpam.slot=A|B).
package slot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Name is a slot: "A" or "B".
type Name string

// The slots.
const (
	A Name = "A"
	B Name = "B"
)

// Other returns the slot that is not n.
func (n Name) Other() Name {
	if n == A {
		return B
	}
	return A
}

// Parse accepts "A", "B", "a", "b".
func Parse(s string) (Name, error) {
	switch strings.ToUpper(s) {
	case "A":
		return A, nil
	case "B":
		return B, nil
	}
	return "", fmt.Errorf("slot %q is not A or B", s)
}

// RootLabel and VerityLabel are the GPT partition labels of slot n.
func RootLabel(n Name) string   { return "VPAM-ROOT-" + string(n) }
func VerityLabel(n Name) string { return "VPAM-VERITY-" + string(n) }

// Disk is where the system shows its disks. The zero value is not usable;
// start from DefaultDisk. Tests point the fields at directories they made.
type Disk struct {
	// ByPartlabel holds a link per GPT partition label (udev's
	// /dev/disk/by-partlabel); a link may point at a block device or, in
	// tests, at a regular file.
	ByPartlabel string
	// ByUUID holds a link per file system / verity UUID (/dev/disk/by-uuid).
	ByUUID string
	// SysBlock is /sys/block (dm-N/dm/name, dm-N/slaves).
	SysBlock string
	// Cmdline is /proc/cmdline.
	Cmdline string
	// Mapper is the dm name of the verified root the initramfs opens.
	Mapper string
	// BootRecord is where the initramfs records the slot it opened
	// (/run/vaultpam-boot/slot: "A" or "B").
	BootRecord string
}

// DefaultDisk returns the appliance's paths.
func DefaultDisk() Disk {
	return Disk{
		ByPartlabel: "/dev/disk/by-partlabel",
		ByUUID:      "/dev/disk/by-uuid",
		SysBlock:    "/sys/block",
		Cmdline:     "/proc/cmdline",
		Mapper:      "vroot",
		BootRecord:  "/run/vaultpam-boot/slot",
	}
}

// Partition is one partition of a slot.
type Partition struct {
	Label string
	Path  string // resolved: /dev/vda2, or a file in tests
	Size  int64  // bytes
}

// Slot is a slot's two partitions.
type Slot struct {
	Name   Name
	Root   Partition
	Verity Partition
}

// Slot resolves slot n's partitions and their sizes.
func (d Disk) Slot(n Name) (Slot, error) {
	s := Slot{Name: n}
	var err error
	if s.Root, err = d.partition(RootLabel(n)); err != nil {
		return s, err
	}
	if s.Verity, err = d.partition(VerityLabel(n)); err != nil {
		return s, err
	}
	return s, nil
}

func (d Disk) partition(label string) (Partition, error) {
	link := filepath.Join(d.ByPartlabel, label)
	path, err := filepath.EvalSymlinks(link)
	if err != nil {
		return Partition{}, fmt.Errorf("partition %s not found (%s): %w (hint: the disk does not have the A/B layout; redeploy the OVA)", label, link, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return Partition{}, fmt.Errorf("partition %s: %w", label, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return Partition{}, fmt.Errorf("partition %s: size: %w", label, err)
	}
	return Partition{Label: label, Path: path, Size: size}, nil
}

// Running returns the slot the running root comes from.
func (d Disk) Running() (Name, error) {
	n, errDM := d.runningFromDM()
	if errDM == nil {
		return n, nil
	}
	if d.BootRecord != "" {
		if b, err := os.ReadFile(d.BootRecord); err == nil {
			if n, err := Parse(strings.TrimSpace(string(b))); err == nil {
				return n, nil
			}
		}
	}
	n, errCmd := d.runningFromCmdline()
	if errCmd == nil {
		return n, nil
	}
	return "", fmt.Errorf("cannot tell the running slot: %w; %w", errDM, errCmd)
}

// runningFromDM finds the dm device named d.Mapper and matches its slaves
// against the slots' partitions.
func (d Disk) runningFromDM() (Name, error) {
	entries, err := os.ReadDir(d.SysBlock)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "dm-") {
			continue
		}
		name, err := os.ReadFile(filepath.Join(d.SysBlock, e.Name(), "dm", "name"))
		if err != nil || strings.TrimSpace(string(name)) != d.Mapper {
			continue
		}
		slaves, err := os.ReadDir(filepath.Join(d.SysBlock, e.Name(), "slaves"))
		if err != nil {
			return "", fmt.Errorf("%s (%s): %w", d.Mapper, e.Name(), err)
		}
		for _, n := range []Name{A, B} {
			dev, err := filepath.EvalSymlinks(filepath.Join(d.ByPartlabel, RootLabel(n)))
			if err != nil {
				continue
			}
			for _, s := range slaves {
				if s.Name() == filepath.Base(dev) {
					return n, nil
				}
			}
		}
		return "", fmt.Errorf("%s (%s) sits on no VPAM-ROOT partition", d.Mapper, e.Name())
	}
	return "", fmt.Errorf("no dm device named %s", d.Mapper)
}

func (d Disk) runningFromCmdline() (Name, error) {
	b, err := os.ReadFile(d.Cmdline)
	if err != nil {
		return "", err
	}
	var slotArg, verity string
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "vaultpam.verity="); ok {
			verity = v
		}
		if v, ok := strings.CutPrefix(f, "vaultpam.slot="); ok {
			slotArg = v
		}
	}
	if verity != "" {
		dev, err := filepath.EvalSymlinks(filepath.Join(d.ByUUID, strings.ToLower(verity)))
		if err != nil {
			return "", fmt.Errorf("vaultpam.verity=%s names no device: %w", verity, err)
		}
		for _, n := range []Name{A, B} {
			if p, err := filepath.EvalSymlinks(filepath.Join(d.ByPartlabel, VerityLabel(n))); err == nil && p == dev {
				return n, nil
			}
		}
		return "", fmt.Errorf("vaultpam.verity=%s is on no VPAM-VERITY partition", verity)
	}
	if slotArg != "" {
		return Parse(slotArg)
	}
	return "", errors.New("the kernel command line names no slot")
}
