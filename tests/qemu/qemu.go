// Package qemu runs a disk image in QEMU (q35, OVMF, TCG) for tests and
// drives it through its serial console: wait for a regular expression with a
// deadline, send a line, take a VGA screendump as PNG, shut down cleanly.
//
// A Machine is safe for use by one test goroutine; its serial reader runs in
// the background. Skip (or SkipIfUnavailable) tells a test why it cannot run
// on a machine without QEMU or OVMF.
package qemu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
)

// Config says what to boot and how.
type Config struct {
	// Disk is the image to boot; Format its format ("raw" or "qcow2").
	Disk, Format string
	// Snapshot keeps Disk unchanged: writes go to a temporary overlay.
	Snapshot bool
	// DiskBus is "virtio-blk" (default), "virtio-scsi" or "ahci".
	DiskBus         string
	MemoryMiB, CPUs int
	// OVMFCode is the firmware; OVMFVars the variable store template,
	// copied per machine so runs do not share EFI variables.
	OVMFCode, OVMFVars string
	// Network adds a QEMU user-mode NIC (virtio-net) isolated from the host
	// and the outside (restrict=on). Off: no NIC at all.
	Network bool
	// Log receives a copy of everything the serial console prints.
	Log io.Writer
	// QEMU is the emulator binary.
	QEMU string
	// ExtraArgs go last on the QEMU command line.
	ExtraArgs []string
}

// DefaultConfig boots disk under Debian's OVMF with TCG, 1 GiB, 2 vCPUs.
func DefaultConfig(disk string) Config {
	return Config{
		Disk: disk, Format: "raw", DiskBus: "virtio-blk",
		MemoryMiB: 1024, CPUs: 2,
		OVMFCode: "/usr/share/OVMF/OVMF_CODE_4M.fd",
		OVMFVars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
		QEMU:     "qemu-system-x86_64",
	}
}

// Validate returns every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Disk == "" {
		errs = append(errs, errors.New("disk is empty"))
	}
	switch c.Format {
	case "raw", "qcow2":
	default:
		errs = append(errs, fmt.Errorf("disk format %q is not raw or qcow2", c.Format))
	}
	switch c.DiskBus {
	case "virtio-blk", "virtio-scsi", "ahci":
	default:
		errs = append(errs, fmt.Errorf("disk bus %q is not virtio-blk, virtio-scsi or ahci", c.DiskBus))
	}
	if c.MemoryMiB < 256 || c.CPUs < 1 {
		errs = append(errs, fmt.Errorf("need at least 256 MiB and 1 CPU, got %d MiB and %d", c.MemoryMiB, c.CPUs))
	}
	if c.OVMFCode == "" || c.OVMFVars == "" || c.QEMU == "" {
		errs = append(errs, errors.New("OVMF code, OVMF vars and QEMU must be set"))
	}
	return errors.Join(errs...)
}

// Available reports why QEMU with OVMF cannot run here, or nil.
func Available() error {
	c := DefaultConfig("x")
	if _, err := exec.LookPath(c.QEMU); err != nil {
		return fmt.Errorf("%s is not installed (package qemu-system-x86)", c.QEMU)
	}
	for _, f := range []string{c.OVMFCode, c.OVMFVars} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("OVMF firmware %s is missing (package ovmf)", f)
		}
	}
	return nil
}

// SkipIfUnavailable skips t when QEMU or OVMF is missing.
func SkipIfUnavailable(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("cannot boot images: %v", err)
	}
}

// args builds the QEMU command line; vars is the machine's OVMF vars copy
// and qmp its QMP socket.
func (c Config) args(vars, qmp string) []string {
	drive := fmt.Sprintf("file=%s,format=%s,if=none,id=disk0,cache=unsafe", c.Disk, c.Format)
	if c.Snapshot {
		drive += ",snapshot=on"
	}
	a := []string{
		"-machine", "q35", "-accel", "tcg",
		"-m", fmt.Sprint(c.MemoryMiB), "-smp", fmt.Sprint(c.CPUs),
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + c.OVMFCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-drive", drive,
		"-display", "none", "-vga", "std",
		"-serial", "stdio", "-monitor", "none",
		"-qmp", "unix:" + qmp + ",server=on,wait=off",
		"-no-user-config", "-nodefaults",
	}
	switch c.DiskBus {
	case "virtio-blk":
		a = append(a, "-device", "virtio-blk-pci,drive=disk0")
	case "virtio-scsi":
		a = append(a, "-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-hd,drive=disk0,bus=scsi0.0")
	case "ahci":
		a = append(a, "-device", "ide-hd,drive=disk0,bus=ide.0")
	}
	if c.Network {
		a = append(a, "-nic", "user,model=virtio-net-pci,restrict=on")
	} else {
		a = append(a, "-nic", "none")
	}
	return append(a, c.ExtraArgs...)
}
