package qemu

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig("")
	c.Format, c.DiskBus, c.MemoryMiB = "vmdk", "floppy", 16
	c.Drives = []Drive{{Bus: BusIDE}, {ID: "cd0", CDROM: true, Bus: BusNVMe}, {ID: "cd0", CDROM: true, Bus: BusAHCI}}
	c.NIC, c.Width = "rtl8139", 1024
	c.GuestFwd = []GuestFwd{{Addr: "10.0.2.100:1", Cmd: "x"}}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, want := range []string{"disk is empty", `format "vmdk"`, `bus "floppy"`, "256 MiB", "has no image",
		"IDE bus is -machine pc's", "cannot sit on nvme", "ID used twice", `NIC "rtl8139"`, "guest forwards need Network", "set both or neither"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if err := DefaultConfig("disk.raw").Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
	if err := VSphereConfig("disk.raw").Validate(); err != nil {
		t.Errorf("VSphereConfig().Validate() = %v", err)
	}
}

func TestArgs(t *testing.T) {
	c := DefaultConfig("/d.raw")
	c.Snapshot = true
	got := strings.Join(c.args("/v.fd", "/q.sock"), " ")
	for _, want := range []string{"-machine q35", "-accel tcg", "file=/d.raw", "format=raw", "snapshot=on", "-serial stdio",
		"unix:/q.sock,server=on,wait=off", "-nic none", "virtio-blk-pci,drive=drv-disk0,id=disk0", "-device VGA"} {
		if !strings.Contains(got, want) {
			t.Errorf("args = %s, want %q in it", got, want)
		}
	}
	if strings.Contains(got, "kvm") {
		t.Errorf("args = %s, must not use KVM (it hangs on these machines)", got)
	}
}

// TestArgsVSphere checks the vSphere-like hardware and the controllers a
// second disk or a CD-ROM can sit on.
func TestArgsVSphere(t *testing.T) {
	c := VSphereConfig("/d.raw")
	c.Drives = append(c.Drives,
		Drive{ID: "sas", Path: "/s.raw", Bus: BusMPTSAS}, Drive{ID: "pv", Path: "/p.raw", Bus: BusPVSCSI},
		Drive{ID: "sata", Path: "/a.iso", CDROM: true, Bus: BusAHCI}, Drive{ID: "n", Path: "/n.raw", Bus: BusNVMe},
		Drive{ID: "ide2", Path: "/i.raw", Bus: BusIDE})
	c.GuestFwd = []GuestFwd{{Addr: "10.0.2.100:8443", Cmd: "/relay lab"}}
	c.Width, c.Height = 1920, 1080
	c.VarsFile = "/vm/vars.fd"
	c.NoReboot = true
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	got := strings.Join(c.args("/vm/vars.fd", "/q.sock"), " ")
	for _, want := range []string{
		"-machine pc",
		"-device virtio-scsi-pci,id=virtioscsi0", "scsi-hd,bus=virtioscsi0.0,scsi-id=0,drive=drv-disk0,id=disk0",
		"if=none,id=drv-cd0,media=cdrom,readonly=on", "ide-cd,bus=ide.0,unit=0,drive=drv-cd0,id=cd0",
		"-device mptsas1068,id=mptsas10680", "scsi-hd,bus=mptsas10680.0,scsi-id=0,drive=drv-sas",
		"-device pvscsi,id=pvscsi0", "scsi-hd,bus=pvscsi0.0,scsi-id=0,drive=drv-pv",
		"-device ahci,id=ahci0", "ide-cd,bus=ahci0.0,drive=drv-sata",
		"nvme,serial=vpam5,drive=drv-n",
		"ide-hd,bus=ide.1,unit=0,drive=drv-ide2",
		"user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:8443-cmd:/relay lab", "-device vmxnet3,netdev=net0",
		"-device VGA,edid=on,xres=1920,yres=1080", "unit=1,file=/vm/vars.fd", "-no-reboot",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args = %s\nwant %q in it", got, want)
		}
	}
	if strings.Contains(got, "bootindex") {
		t.Errorf("args = %s: a bootindex makes OVMF leave the IDE ports disabled (the CD-ROM vanishes in Linux)", got)
	}
	q := DefaultConfig("/d.raw")
	q.DiskBus = BusAHCI
	q.Drives = []Drive{{ID: "cd0", CDROM: true, Bus: BusAHCI}}
	got = strings.Join(q.args("/v.fd", "/q.sock"), " ")
	for _, want := range []string{"ide-hd,bus=ide.0,drive=drv-disk0", "ide-cd,bus=ide.1,drive=drv-cd0"} {
		if !strings.Contains(got, want) {
			t.Errorf("q35 AHCI args = %s\nwant %q in it", got, want)
		}
	}
	if strings.Contains(got, "-device ahci") {
		t.Errorf("q35 args add an AHCI card; q35 has one built in: %s", got)
	}
}

// TestVarsFilePersists checks the VM's variable store is made from the
// template once and then kept.
func TestVarsFilePersists(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "template.fd")
	os.WriteFile(tmpl, []byte("template"), 0o644)
	c := DefaultConfig("/d.raw")
	c.OVMFVars, c.VarsFile = tmpl, filepath.Join(dir, "vm-vars.fd")
	p, err := varsFile(c, t.TempDir())
	if err != nil || p != c.VarsFile {
		t.Fatalf("varsFile = %q, %v; want %q", p, err, c.VarsFile)
	}
	os.WriteFile(p, []byte("written by the guest"), 0o644)
	if p, err = varsFile(c, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "written by the guest" {
		t.Errorf("second start's vars = %q, want what the first run left", b)
	}
	c.VarsFile = ""
	run := t.TempDir()
	if p, err = varsFile(c, run); err != nil || filepath.Dir(p) != run {
		t.Fatalf("varsFile without VarsFile = %q, %v; want a copy in %s", p, err, run)
	}
	if b, _ := os.ReadFile(p); string(b) != "template" {
		t.Errorf("fresh vars = %q, want the template", b)
	}
}

// TestFirmwareBootsToSerial boots OVMF on a blank disk: the firmware
// reports on the serial console that nothing is bootable, and the harness
// sees it, takes a screendump and stops the machine.
func TestFirmwareBootsToSerial(t *testing.T) {
	SkipIfUnavailable(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "blank.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 8<<20); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	c := DefaultConfig(disk)
	c.MemoryMiB, c.CPUs = 256, 1
	c.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	m, err := Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	// OVMF's boot manager names the devices it tries on the serial line.
	if _, err := m.Expect(regexp.MustCompile(`BdsDxe|Boot\d{4}|UEFI`), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "screen.png")
	if err := m.Screendump(png); err != nil {
		t.Fatalf("Screendump: %v", err)
	}
	data, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screendump is not a PNG (%d bytes, %v)", len(data), err)
	}
	m.Kill()
	if !strings.Contains(log.String(), m.Output()[:10]) {
		t.Errorf("Log did not receive the serial output")
	}
	if _, err := m.Expect(regexp.MustCompile(`never printed`), time.Second); err == nil {
		t.Errorf("Expect after exit = nil error, want one")
	}
}
