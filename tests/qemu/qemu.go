// Package qemu runs a disk image in QEMU (OVMF, TCG) for tests and drives
// it through its serial console and QMP: wait for text with a deadline,
// type keys, take VGA screendumps, press the power button, reset, power
// off, swap the CD-ROM's medium.
//
// A Config describes the virtual hardware: the machine type ("q35", or
// "pc" — i440FX + PIIX, the closest QEMU has to vSphere's i440BX + PIIX4),
// the boot disk and further disks and CD-ROMs on any controller QEMU
// emulates (IDE, AHCI, virtio, NVMe, LSI SAS 1068, VMware pvscsi), the
// network card (virtio, vmxnet3, e1000e) with guest forwards, and the VGA
// size. With VarsFile set, the EFI variable store survives from one Start
// to the next like a VM's NVRAM, so a test can power a VM off and on.
//
// A Machine is one QEMU process. It is safe for use by one test goroutine;
// its serial reader runs in the background from Start until QEMU exits and
// always drains the serial port, because QEMU stalls a guest whose serial
// output nobody reads. Skip (or SkipIfUnavailable) tells a test why it
// cannot run on a machine without QEMU or OVMF.
package qemu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Buses a Drive can sit on. "ide" is the PIIX IDE controller of -machine pc;
// "ahci" is q35's built-in SATA controller, or an AHCI card added to pc
// (vSphere's SATA controller is such a card on i440BX).
const (
	BusVirtioBlk  = "virtio-blk"
	BusVirtioSCSI = "virtio-scsi"
	BusIDE        = "ide"
	BusAHCI       = "ahci"
	BusNVMe       = "nvme"
	BusMPTSAS     = "mptsas1068" // LSI Logic SAS (Linux mptsas)
	BusPVSCSI     = "pvscsi"     // VMware paravirtual SCSI (Linux vmw_pvscsi)
)

var buses = []string{BusVirtioBlk, BusVirtioSCSI, BusIDE, BusAHCI, BusNVMe, BusMPTSAS, BusPVSCSI}

// Drive is a disk or a CD-ROM.
type Drive struct {
	// ID names the drive for QMP (ChangeMedium, Eject); "" gives one.
	ID string
	// Path is the image; a CD-ROM may have none (an empty tray).
	Path string
	// Format is "raw" (default) or "qcow2".
	Format string
	// CDROM makes it a CD-ROM (read-only, removable medium).
	CDROM bool
	// Bus is one of the Bus constants.
	Bus string
	// Snapshot keeps Path unchanged: writes go to a temporary overlay.
	Snapshot bool
}

// Config says what to boot and how.
type Config struct {
	// Machine is "q35" (default) or "pc".
	Machine string
	// Disk is the boot disk; Format its format ("raw" or "qcow2"), DiskBus
	// its bus ("virtio-blk" by default). Snapshot keeps Disk unchanged.
	Disk, Format string
	Snapshot     bool
	DiskBus      string
	// Drives are more disks and CD-ROMs.
	Drives          []Drive
	MemoryMiB, CPUs int
	// OVMFCode is the firmware; OVMFVars the variable store template.
	OVMFCode, OVMFVars string
	// VarsFile is this VM's own variable store. Empty: each Start gets a
	// fresh copy of OVMFVars, removed when QEMU exits. Set: the template
	// is copied there once, and later Starts keep what the firmware and
	// the guest stored (boot entries, BootNext, …).
	VarsFile string
	// Network adds a QEMU user-mode NIC isolated from the host and the
	// outside (restrict=on); only GuestFwd addresses reach anything. Off:
	// no NIC at all. NIC is its model: "virtio-net-pci" (default),
	// "vmxnet3" or "e1000e".
	Network  bool
	NIC      string
	GuestFwd []GuestFwd
	// NoReboot makes a reset of the guest end QEMU (-no-reboot) instead of
	// resetting the machine in place; the caller starts it again (same
	// disks, same VarsFile). Under TCG a guest reset in place runs on far
	// slower than a fresh QEMU, firmware and kernel alike (measured: reset
	// to multi-user 97 s against 52 s from a cold start; firmware 95 s
	// against 14 s on a loaded machine), though the guest does exactly the
	// same; hardware virtualization (vSphere) has no such penalty.
	NoReboot bool
	// Width and Height are the VGA display's preferred size (its EDID):
	// OVMF sets up the framebuffer at that size. 0: QEMU's default, for
	// which OVMF picks 1280×800.
	Width, Height int
	// Log receives a copy of everything the serial console prints.
	Log io.Writer
	// QEMU is the emulator binary.
	QEMU string
	// ExtraArgs go last on the QEMU command line.
	ExtraArgs []string
}

// GuestFwd forwards the guest's TCP connections to Addr (an IPv4
// address:port inside QEMU's user network, e.g. 10.0.2.100:8443) to a new
// run of Cmd each, its stdin/stdout carrying the connection.
type GuestFwd struct {
	Addr, Cmd string
}

// DefaultConfig boots disk on q35 under Debian's OVMF with TCG, 1 GiB,
// 2 vCPUs.
func DefaultConfig(disk string) Config {
	return Config{
		Machine: "q35",
		Disk:    disk, Format: "raw", DiskBus: BusVirtioBlk,
		MemoryMiB: 1024, CPUs: 2,
		OVMFCode: "/usr/share/OVMF/OVMF_CODE_4M.fd",
		OVMFVars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
		QEMU:     "qemu-system-x86_64",
	}
}

// VSphereConfig is the hardware closest to what vSphere gives the
// appliance's OVA that Debian's OVMF can boot: -machine pc, the disk on
// virtio-scsi (OVMF has no pvscsi driver), a vmxnet3 card and an empty
// IDE CD-ROM (ID "cd0") for the ISO transport.
func VSphereConfig(disk string) Config {
	c := DefaultConfig(disk)
	c.Machine, c.DiskBus = "pc", BusVirtioSCSI
	c.Network, c.NIC = true, "vmxnet3"
	c.Drives = []Drive{{ID: "cd0", CDROM: true, Bus: BusIDE}}
	return c
}

// drives returns the boot disk followed by the other drives, with IDs and
// formats filled in.
func (c Config) drives() []Drive {
	all := append([]Drive{{ID: "disk0", Path: c.Disk, Format: c.Format, Bus: c.DiskBus, Snapshot: c.Snapshot}}, c.Drives...)
	for i := range all {
		if all[i].ID == "" {
			all[i].ID = fmt.Sprintf("drive%d", i)
		}
		if all[i].Format == "" {
			all[i].Format = "raw"
		}
	}
	return all
}

// Validate returns every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Disk == "" {
		errs = append(errs, errors.New("disk is empty"))
	}
	switch c.Machine {
	case "q35", "pc":
	default:
		errs = append(errs, fmt.Errorf("machine %q is not q35 or pc", c.Machine))
	}
	ids := map[string]bool{}
	ide := 0
	for i, d := range c.drives() {
		name := fmt.Sprintf("drive %d (%s)", i, d.ID)
		if i == 0 {
			name = "disk"
		}
		if ids[d.ID] {
			errs = append(errs, fmt.Errorf("%s: ID used twice", name))
		}
		ids[d.ID] = true
		switch d.Format {
		case "raw", "qcow2":
		default:
			errs = append(errs, fmt.Errorf("%s format %q is not raw or qcow2", name, d.Format))
		}
		if !slices.Contains(buses, d.Bus) {
			errs = append(errs, fmt.Errorf("%s bus %q is not one of %s", name, d.Bus, strings.Join(buses, ", ")))
		}
		if d.Path == "" && !d.CDROM && i > 0 {
			errs = append(errs, fmt.Errorf("%s has no image (only a CD-ROM may be empty)", name))
		}
		if d.CDROM && (d.Bus == BusNVMe || d.Bus == BusVirtioBlk) {
			errs = append(errs, fmt.Errorf("%s: a CD-ROM cannot sit on %s", name, d.Bus))
		}
		if d.Bus == BusIDE {
			ide++
			if c.Machine != "pc" {
				errs = append(errs, fmt.Errorf("%s: the IDE bus is -machine pc's (q35 has AHCI: use %q)", name, BusAHCI))
			}
		}
	}
	if ide > 4 {
		errs = append(errs, fmt.Errorf("%d drives on IDE, the PIIX controller takes 4", ide))
	}
	switch c.NIC {
	case "", "virtio-net-pci", "vmxnet3", "e1000e", "e1000":
	default:
		errs = append(errs, fmt.Errorf("NIC %q is not virtio-net-pci, vmxnet3, e1000e or e1000", c.NIC))
	}
	if len(c.GuestFwd) > 0 && !c.Network {
		errs = append(errs, errors.New("guest forwards need Network"))
	}
	for _, f := range c.GuestFwd {
		if !strings.Contains(f.Addr, ":") || f.Cmd == "" || strings.Contains(f.Cmd, ",") {
			errs = append(errs, fmt.Errorf("guest forward %q → %q: want IP:port and a command without commas", f.Addr, f.Cmd))
		}
	}
	if (c.Width == 0) != (c.Height == 0) || c.Width < 0 || c.Height < 0 {
		errs = append(errs, fmt.Errorf("display size %dx%d: set both or neither", c.Width, c.Height))
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

// args builds the QEMU command line; vars is the machine's OVMF vars file
// and qmp its QMP socket.
func (c Config) args(vars, qmp string) []string {
	a := []string{
		"-machine", c.Machine, "-accel", "tcg",
		"-m", fmt.Sprint(c.MemoryMiB), "-smp", fmt.Sprint(c.CPUs),
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + c.OVMFCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-display", "none",
		"-serial", "stdio", "-monitor", "none",
		"-qmp", "unix:" + qmp + ",server=on,wait=off",
		"-no-user-config", "-nodefaults",
	}
	vga := "VGA"
	if c.Width > 0 {
		vga += fmt.Sprintf(",edid=on,xres=%d,yres=%d", c.Width, c.Height)
	}
	a = append(a, "-device", vga)
	if c.NoReboot {
		a = append(a, "-no-reboot")
	}
	a = append(a, c.driveArgs()...)
	if c.Network {
		netdev := "user,id=net0,restrict=on"
		for _, f := range c.GuestFwd {
			netdev += fmt.Sprintf(",guestfwd=tcp:%s-cmd:%s", f.Addr, f.Cmd)
		}
		nic := c.NIC
		if nic == "" {
			nic = "virtio-net-pci"
		}
		a = append(a, "-netdev", netdev, "-device", nic+",netdev=net0")
	} else {
		a = append(a, "-nic", "none")
	}
	return append(a, c.ExtraArgs...)
}

// driveArgs puts each drive on its controller, adding a controller the
// first time a bus needs one. No drive gets a bootindex: with one, OVMF
// leaves the controllers it does not boot from unconnected, and Linux's
// ata_piix then ignores the PIIX IDE ports OVMF did not enable (a CD-ROM
// on IDE vanishes). OVMF tries the drives in its own order; a CD-ROM
// without a boot image costs it a moment.
func (c Config) driveArgs() []string {
	var a []string
	controllers := map[string]string{} // bus → controller id
	next := map[string]int{}           // bus → next unit/port/target
	controller := func(bus string) string {
		if id, ok := controllers[bus]; ok {
			return id
		}
		id := strings.ReplaceAll(bus, "-", "") + "0"
		switch bus {
		case BusVirtioSCSI:
			a = append(a, "-device", "virtio-scsi-pci,id="+id)
		case BusMPTSAS:
			a = append(a, "-device", "mptsas1068,id="+id)
		case BusPVSCSI:
			a = append(a, "-device", "pvscsi,id="+id)
		case BusAHCI:
			if c.Machine == "q35" {
				id = "ide" // q35's ICH9 AHCI: buses ide.0 … ide.5
			} else {
				a = append(a, "-device", "ahci,id="+id)
			}
		case BusIDE:
			id = "ide" // PIIX: ide.0 and ide.1, master and slave each
		}
		controllers[bus] = id
		return id
	}
	for i, d := range c.drives() {
		// An empty CD-ROM tray has no file, and then no cache mode:
		// QEMU 7.2 refuses cache= without a file ("Must specify either
		// driver or file").
		drive := fmt.Sprintf("if=none,id=drv-%s", d.ID)
		if d.Path != "" {
			drive += ",cache=unsafe,format=" + d.Format + ",file=" + d.Path
		}
		if d.CDROM {
			drive += ",media=cdrom,readonly=on"
		}
		if d.Snapshot {
			drive += ",snapshot=on"
		}
		a = append(a, "-drive", drive)
		kind := "hd"
		if d.CDROM {
			kind = "cd"
		}
		dev := ""
		n := next[d.Bus]
		next[d.Bus]++
		switch d.Bus {
		case BusVirtioBlk:
			dev = "virtio-blk-pci"
		case BusNVMe:
			dev = fmt.Sprintf("nvme,serial=vpam%d", i)
		case BusVirtioSCSI, BusMPTSAS, BusPVSCSI:
			dev = fmt.Sprintf("scsi-%s,bus=%s.0,scsi-id=%d", kind, controller(d.Bus), n)
		case BusAHCI:
			dev = fmt.Sprintf("ide-%s,bus=%s.%d", kind, controller(d.Bus), n)
		case BusIDE:
			// Masters first: ide.0 unit 0, ide.1 unit 0, then the slaves.
			dev = fmt.Sprintf("ide-%s,bus=%s.%d,unit=%d", kind, controller(d.Bus), n%2, n/2)
		}
		dev += ",drive=drv-" + d.ID + ",id=" + d.ID
		a = append(a, "-device", dev)
	}
	return a
}
