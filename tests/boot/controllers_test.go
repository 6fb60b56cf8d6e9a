package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/tests/ovfiso"
	"github.com/vaultpam/appliance/tests/qemu"
)

// A controller case: the boot disk on one bus, more drives on others, and
// what the guest must see. Debian's OVMF boots from IDE, AHCI, NVMe and
// virtio but has no driver for LSI SAS or pvscsi (tried: it drops to the
// EFI shell), so those carry a second disk behind a virtio-scsi boot disk.
type controllerCase struct {
	name    string
	machine string
	bus     string // the boot disk's
	// more drives; a CD-ROM gets the OVF ISO, a disk a blank image of
	// sizeMiB.
	more []extraDrive
	// the device /config is mounted from (a regular expression: with
	// several SCSI controllers the kernel names disks in probe order), and
	// the drivers the boot report must show for the boot disk and for each
	// extra drive.
	configDev  string
	bootDriver string
}

type extraDrive struct {
	bus     string
	cdrom   bool
	sizeMiB int64
	driver  string // the controller's Linux driver
	// hostOnly: QEMU's emulation brings the controller up under its Linux
	// driver but reports no device behind it, so only the driver's SCSI
	// host is checked (see the case).
	hostOnly bool
}

// The cases boot one at a time; each is one boot of about a minute (TCG)
// with minimal checks: the drives are seen on their controllers, and a
// CD-ROM's OVF environment is read.
//
// LSI Logic SAS: QEMU 7.2's mptsas1068 comes up under Linux 6.1's mptsas
// ("ioc0: LSISAS1068 A0, FwRev=01329200h, Ports=8") but never reports a
// device attached to its phys (tried on pc and q35, with and without a
// scsi-id), so for it the test checks that mptsas drives the controller.
// LSI Logic Parallel (mptspi) and BusLogic have no QEMU model at all.
var controllerCases = []controllerCase{
	{name: "pc-ide", machine: "pc", bus: qemu.BusIDE, configDev: "/dev/sda6", bootDriver: "ata_piix",
		more: []extraDrive{{bus: qemu.BusIDE, cdrom: true, driver: "ata_piix"}}},
	{name: "q35-ahci", machine: "q35", bus: qemu.BusAHCI, configDev: "/dev/sda6", bootDriver: "ahci",
		more: []extraDrive{{bus: qemu.BusAHCI, cdrom: true, driver: "ahci"}}},
	{name: "pc-nvme-sata-cdrom", machine: "pc", bus: qemu.BusNVMe, configDev: "/dev/nvme0n1p6", bootDriver: "nvme",
		more: []extraDrive{{bus: qemu.BusAHCI, cdrom: true, driver: "ahci"}}},
	{name: "pc-virtio-scsi-lsisas-pvscsi", machine: "pc", bus: qemu.BusVirtioSCSI, configDev: "/dev/sd[a-c]6", bootDriver: "virtio-pci",
		more: []extraDrive{{bus: qemu.BusMPTSAS, sizeMiB: 64, driver: "mptsas", hostOnly: true}, {bus: qemu.BusPVSCSI, sizeMiB: 96, driver: "vmw_pvscsi"}}},
}

// TestBootControllers boots the image with its disk, a second disk or the
// CD-ROM on each controller QEMU emulates of those vSphere offers (IDE on
// -machine pc, AHCI on q35 and as a card on pc, NVMe, virtio-scsi, LSI
// Logic SAS, VMware pvscsi). It checks each drive shows up on its
// controller's driver and that the OVF environment on a CD-ROM (IDE or
// SATA) is read: the welcome screen names the CD-ROM it came from.
func TestBootControllers(t *testing.T) {
	src, man := builtDisk(t)
	qemu.SkipIfUnavailable(t)
	if err := ovfiso.Available(); err != nil {
		t.Skip(err)
	}
	iso := ovfiso.WriteT(t, t.TempDir(), "ovf-env.iso", map[string]string{
		// No token: the wizard waits on its welcome screen, which says
		// where the deployment settings came from.
		"vaultpam.hostname":          "vpam-ctl-test",
		"vaultpam.control_plane_url": "https://127.0.0.1:9",
	})
	for _, tc := range controllerCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := qemu.DefaultConfig(copyDisk(t, src))
			c.Machine, c.DiskBus = tc.machine, tc.bus
			for i, d := range tc.more {
				drive := qemu.Drive{ID: fmt.Sprintf("x%d", i), Bus: d.bus, CDROM: d.cdrom, Path: iso}
				if !d.cdrom {
					drive.Path = filepath.Join(dir, drive.ID+".raw")
					if err := os.WriteFile(drive.Path, nil, 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Truncate(drive.Path, d.sizeMiB<<20); err != nil {
						t.Fatal(err)
					}
				}
				c.Drives = append(c.Drives, drive)
			}
			m, r := bootWith(t, c, man)
			defer m.Kill()
			var disks, hosts []string
			for k, v := range r {
				switch {
				case strings.HasPrefix(k, "disk "):
					disks = append(disks, k+" "+v)
				case strings.HasPrefix(k, "scsihost "):
					hosts = append(hosts, v)
				}
			}
			sort.Strings(disks)
			sort.Strings(hosts)
			t.Logf("disks: %v; SCSI host drivers: %v", disks, hosts)
			got := r["mount /config"]
			if !regexp.MustCompile("^" + tc.configDev + " ext4 rw").MatchString(got) {
				t.Errorf("mount /config = %q, want %s", got, tc.configDev)
			}
			if got := r["mount /"]; !strings.HasPrefix(got, "/dev/mapper/vroot squashfs ro") {
				t.Errorf("mount / = %q, want the verity root", got)
			}
			// The boot disk is the one /config was mounted from.
			dev, _, _ := strings.Cut(got, " ")
			bootDev := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(dev, "/dev/"), "6"), "p")
			if got := r["disk "+bootDev]; !strings.HasSuffix(got, " "+tc.bootDriver) {
				t.Errorf("boot disk %s = %q, want it on %s", bootDev, got, tc.bootDriver)
			}
			ovf := false
			for _, d := range tc.more {
				if d.cdrom {
					ovf = true
					if !hasDisk(r, `sr\d`, -1, d.driver) {
						t.Errorf("no CD-ROM with a medium on %s; disks %v", d.driver, disks)
					}
					continue
				}
				if !slices.Contains(hosts, d.driver) {
					t.Errorf("no SCSI host driven by %s; hosts %v", d.driver, hosts)
				}
				if d.hostOnly {
					if hasDisk(r, `sd[a-z]`, d.sizeMiB<<20/512, d.driver) {
						t.Logf("the %d MiB disk on %s is seen too", d.sizeMiB, d.driver)
					} else {
						t.Logf("%s drives the controller; QEMU's model shows no disk behind it (see controllerCases)", d.driver)
					}
					continue
				}
				if !hasDisk(r, `sd[a-z]`, d.sizeMiB<<20/512, d.driver) {
					t.Errorf("no %d MiB disk on %s; disks %v", d.sizeMiB, d.driver, disks)
				}
			}
			if ovf {
				// The console wraps lines: words may be split by a
				// line end and the next line's cursor move.
				gap := `(?:\s|\x1b\[[0-9;]*[A-Za-z])+`
				re := regexp.MustCompile(strings.Join(strings.Fields(`Deployment settings were found in the OVF environment`), gap) + gap + `\((/dev/sr\d)\)`)
				if sub, err := m.Expect(re, 3*time.Minute); err != nil {
					t.Errorf("the console did not read the OVF environment from the CD-ROM: %v", err)
				} else {
					t.Logf("OVF environment read from %s", sub[1])
				}
			}
		})
	}
}

// hasDisk reports whether the boot report lists a disk whose name matches
// name with size sectors (-1: any non-zero size) on driver.
func hasDisk(r report, name string, sectors int64, driver string) bool {
	re := regexp.MustCompile(`^disk ` + name + `$`)
	for k, v := range r {
		f := strings.Fields(v)
		if !re.MatchString(k) || len(f) != 2 || f[1] != driver {
			continue
		}
		if sectors < 0 && f[0] != "0" || fmt.Sprint(sectors) == f[0] {
			return true
		}
	}
	return false
}
