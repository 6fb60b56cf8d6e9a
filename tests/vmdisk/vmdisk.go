// Package vmdisk handles the appliance's virtual disk the way the tests
// need it, without mounting anything: the disk taken out of the shipped OVA
// (its streamOptimized VMDK converted to raw with qemu-img), partitions
// found by their GPT label, files written onto an ext4 partition with
// debugfs, a partition wiped.
//
// Functions are safe to call only while no QEMU has the disk open.
package vmdisk

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vaultpam/appliance/appliance/gpt"
)

// FromOVA takes the one VMDK out of the OVA at ova and converts it to a
// sparse raw disk at dst (qemu-img convert), as a hypervisor would see the
// disk of a VM deployed from that OVA.
func FromOVA(ova, dst string) error {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return errors.New("qemu-img is not installed (package qemu-utils)")
	}
	f, err := os.Open(ova)
	if err != nil {
		return err
	}
	defer f.Close()
	vmdk := dst + ".vmdk"
	defer os.Remove(vmdk)
	tr := tar.NewReader(f)
	found := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", ova, err)
		}
		if !strings.HasSuffix(h.Name, ".vmdk") {
			continue
		}
		if found != "" {
			return fmt.Errorf("%s holds two disks (%s, %s); want one", ova, found, h.Name)
		}
		found = h.Name
		out, err := os.Create(vmdk)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("extracting %s: %w", h.Name, err)
		}
	}
	if found == "" {
		return fmt.Errorf("%s holds no .vmdk", ova)
	}
	if out, err := exec.Command("qemu-img", "convert", "-f", "vmdk", "-O", "raw", vmdk, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img convert %s: %v\n%s", found, err, out)
	}
	return nil
}

// Partition returns the partition of disk labelled label.
func Partition(disk, label string) (gpt.Partition, error) {
	f, err := os.Open(disk)
	if err != nil {
		return gpt.Partition{}, err
	}
	defer f.Close()
	tab, err := gpt.Read(f)
	if err != nil {
		return gpt.Partition{}, fmt.Errorf("reading the partition table of %s: %w", disk, err)
	}
	p, ok := tab.ByName(label)
	if !ok {
		return gpt.Partition{}, fmt.Errorf("%s has no partition labelled %s", disk, label)
	}
	return p, nil
}

// WriteFiles puts files (name → content, owned by root, mode 0644: no
// secrets) into the root directory of the ext4 partition labelled label,
// replacing files of the same name: the partition is copied out, changed
// with debugfs and copied back.
func WriteFiles(disk, label string, files map[string]string) error {
	if _, err := exec.LookPath("debugfs"); err != nil {
		return errors.New("debugfs is not installed (package e2fsprogs)")
	}
	p, err := Partition(disk, label)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vmdisk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	part := filepath.Join(dir, "part.img")
	if err := copyRange(disk, part, p.Offset(), p.Size()); err != nil {
		return err
	}
	for name, content := range files {
		src := filepath.Join(dir, "src-"+filepath.Base(name))
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			return err
		}
		exec.Command("debugfs", "-w", "-R", "rm "+name, part).Run() // absent is fine
		out, err := exec.Command("debugfs", "-w", "-R", "write "+src+" "+name, part).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("rror")) {
			return fmt.Errorf("debugfs write %s on %s: %v\n%s", name, label, err, out)
		}
	}
	data, err := os.ReadFile(part)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(data, p.Offset()); err != nil {
		return err
	}
	return f.Sync()
}

// Wipe makes every byte of the partition labelled label read as zero (a
// hole punched into the file), as if the virtual disk's data there were
// lost. The partition table is left alone.
func Wipe(disk, label string) error {
	p, err := Partition(disk, label)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, p.Offset(), p.Size()); err != nil {
		return fmt.Errorf("wiping %s: %w", label, err)
	}
	return f.Sync()
}

// IsZero reports whether every byte of the partition labelled label is
// zero.
func IsZero(disk, label string) (bool, error) {
	p, err := Partition(disk, label)
	if err != nil {
		return false, err
	}
	f, err := os.Open(disk)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	r := io.NewSectionReader(f, p.Offset(), p.Size())
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return false, nil
			}
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

func copyRange(src, dst string, off, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(in, off, size)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
