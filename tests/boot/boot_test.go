package boot

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/appliance/image"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/tests/qemu"
)

// testConfig is a connector config pointing at the guest's own loopback, so
// the connector runs (and tries to connect) without any traffic leaving.
const testConfig = "control_plane_url: https://127.0.0.1:9\nconnector_name: boot-test\n"

var (
	reMultiUser  = regexp.MustCompile(`Reached target .*Multi-User System`)
	reConsoleUp  = regexp.MustCompile(`Started .*(VaultPAM console \(ttyS0\)|vaultpam-console-serial)`)
	reReportEnd  = regexp.MustCompile(`vaultpam-report: end`)
	reReportLine = regexp.MustCompile(`vaultpam-report: (\S+) (.*?)\r?$`)
)

// report is the boot report the image prints on the serial console
// (rootfs/overlay/usr/libexec/vaultpam/boot-report): key → value.
type report map[string]string

func parseReport(out string) report {
	r := report{}
	i := strings.LastIndex(out, "vaultpam-report: begin")
	if i < 0 {
		return r
	}
	for _, line := range strings.Split(out[i:], "\n") {
		m := reReportLine.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		// "mount /data …", "unit x active", "disk sda 2048 ahci",
		// "scsihost host3 mptsas", "verity …", "status {…}"
		key, val := m[1], m[2]
		if key == "mount" || key == "unit" || key == "disk" || key == "scsihost" {
			k, v, _ := strings.Cut(val, " ")
			key, val = key+" "+k, v
		}
		r[key] = strings.TrimSpace(val)
	}
	return r
}

// boot starts disk and waits for the boot report; it returns the machine
// (still running) and the report, and logs how long the serial console
// took to be ready.
func boot(t *testing.T, disk string, man *image.Manifest) (*qemu.Machine, report) {
	return bootWith(t, qemu.DefaultConfig(disk), man)
}

// bootWith is boot on the hardware c describes.
func bootWith(t *testing.T, c qemu.Config, man *image.Manifest) (*qemu.Machine, report) {
	t.Helper()
	qemu.SkipIfUnavailable(t)
	logPath := filepath.Join(t.TempDir(), "serial.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	t.Cleanup(cancel)
	c.Log = logFile
	m, err := qemu.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Kill)
	if installed(man, "vaultpam-console") {
		if _, err := m.Expect(reConsoleUp, 10*time.Minute); err != nil {
			t.Fatalf("the serial console did not start: %v", err)
		}
		t.Logf("console ready on ttyS0 %s after QEMU started (TCG, firmware included)", m.Since().Round(100*time.Millisecond))
	}
	if _, err := m.Expect(reMultiUser, 10*time.Minute); err != nil {
		t.Fatalf("did not reach multi-user: %v", err)
	}
	t.Logf("multi-user reached %s after QEMU started", m.Since().Round(100*time.Millisecond))
	if _, err := m.Expect(reReportEnd, 5*time.Minute); err != nil {
		t.Fatalf("no boot report: %v", err)
	}
	return m, parseReport(m.Output())
}

func installed(m *image.Manifest, name string) bool { return slices.Contains(m.Binaries, name) }

// checkUnits asserts our units run: the data and config units always, the
// connector and the consoles when their binaries are in the image.
func checkUnits(t *testing.T, m *image.Manifest, r report) {
	t.Helper()
	for _, u := range []string{"vaultpam-data", "vaultpam-config"} {
		if got := r["unit "+u]; got != "active" {
			t.Errorf("%s is %q, want active", u, got)
		}
	}
	checks := map[string]string{
		"vaultpam-connector":      "vaultpam-connector",
		"vaultpam-console-tty1":   "vaultpam-console",
		"vaultpam-console-serial": "vaultpam-console",
	}
	for unit, bin := range checks {
		got := r["unit "+unit]
		if installed(m, bin) {
			if got != "active" {
				t.Errorf("%s is %q, want active (%s is in the image)", unit, got, bin)
			}
		} else {
			t.Logf("%s is not in this image (make build did not produce it); %s is %q", bin, unit, got)
		}
	}
}

// checkMode asserts the connector's status (printed by the boot report
// from `vaultpam-connector status --json`) is in mode want.
func checkMode(t *testing.T, man *image.Manifest, r report, want string) {
	t.Helper()
	if !installed(man, "vaultpam-connector") {
		return
	}
	var st localapi.Status
	if err := json.Unmarshal([]byte(r["status"]), &st); err != nil {
		t.Errorf("connector status %q is not status JSON: %v", r["status"], err)
		return
	}
	if st.Mode != want {
		t.Errorf("connector mode = %q (state %s, data_dir %s, durable %v), want %s", st.Mode, st.State, st.DataDir, st.DataDurable, want)
	}
}

// TestBoot boots a copy of the disk (with a connector config on CONFIG and
// 256 MiB more disk for DATA to grow into) and checks, over the serial
// console: multi-user reached, / read-only from dm-verity, /config and
// /data from their partitions, DATA grown, units running.
func TestBoot(t *testing.T) {
	src, man := builtDisk(t)
	disk := copyDisk(t, src)
	writeConfigFiles(t, disk, man, map[string]string{"connector.yaml": testConfig, "hostname": "vpam-boot-test\n"})
	if err := os.Truncate(disk, man.DiskSize+256<<20); err != nil {
		t.Fatal(err)
	}
	m, r := boot(t, disk, man)
	out := m.Output()
	t.Logf("boot report: %v", r)

	if got := r["mount /"]; !regexp.MustCompile(`^/dev/mapper/vroot squashfs ro[,\s]`).MatchString(got) {
		t.Errorf("mount / = %q, want /dev/mapper/vroot squashfs ro", got)
	}
	if got := r["verity"]; !strings.Contains(got, "verified") {
		t.Errorf("verity status = %q, want verified", got)
	}
	if got := r["mount /config"]; !regexp.MustCompile(`^/dev/vda6 ext4 rw`).MatchString(got) {
		t.Errorf("mount /config = %q, want /dev/vda6 ext4 rw", got)
	}
	dataP, _ := man.Partition(image.LabelData)
	dataRE := regexp.MustCompile(`^/dev/vda7 ext4 rw\S* (\d+(?:\.\d+)?)M$`)
	if got := r["mount /data"]; !dataRE.MatchString(got) {
		t.Errorf("mount /data = %q, want /dev/vda7 ext4 rw with a size in MiB", got)
	} else if size, _ := strconv.ParseFloat(dataRE.FindStringSubmatch(got)[1], 64); size < float64(dataP.Size>>20)+200 {
		t.Errorf("/data is %.0f MiB, DATA (%d MiB) did not grow into the added 256 MiB", size, dataP.Size>>20)
	}
	if !strings.Contains(out, "vaultpam-data: growing DATA") {
		t.Errorf("no 'growing DATA' message on the console")
	}
	if got := r["mount /var"]; !strings.HasPrefix(got, "tmpfs tmpfs") {
		t.Errorf("mount /var = %q, want tmpfs", got)
	}
	if got := r["hostname"]; got != "vpam-boot-test" {
		t.Errorf("hostname = %q, want vpam-boot-test from /config/hostname", got)
	}
	if got := r["machine-id"]; got != "persisted" {
		t.Errorf("machine-id is %q, want persisted on /config", got)
	}
	checkUnits(t, man, r)
	checkMode(t, man, r, localapi.ModeAutonomousRestart)
	if installed(man, "vaultpam-console") {
		// The report wrote over the serial console's screen and then sent
		// it SIGWINCH: a full repaint (clear, then the title) must follow.
		if _, err := m.Expect(regexp.MustCompile(`\x1b\[2J(?s:.*?)VaultPAM Connector`), 2*time.Minute); err != nil {
			t.Errorf("the serial console did not repaint after the boot report: %v", err)
		}
	}
	if regexp.MustCompile(`(?m)login:\s*$`).MatchString(out) {
		t.Errorf("a login prompt appeared on the serial console")
	}
	if err := m.Shutdown(3 * time.Minute); err != nil {
		t.Errorf("clean shutdown: %v", err)
	}
}

// TestBootWithoutData deletes VPAM-DATA from the partition table: the
// appliance still boots, /data is tmpfs and the connector is in guided
// recovery mode.
func TestBootWithoutData(t *testing.T) {
	src, man := builtDisk(t)
	needTool(t, "sfdisk", "fdisk")
	disk := copyDisk(t, src)
	writeConfigFiles(t, disk, man, map[string]string{"connector.yaml": testConfig})
	p, _ := man.Partition(image.LabelData)
	if out, err := run("sfdisk", "--no-reread", "--no-tell-kernel", "--delete", disk, strconv.Itoa(p.Number)); err != nil {
		t.Fatalf("deleting DATA: %v\n%s", err, out)
	}
	m, r := boot(t, disk, man)
	t.Logf("boot report: %v", r)
	if got := r["mount /data"]; !strings.HasPrefix(got, "tmpfs tmpfs") {
		t.Errorf("mount /data = %q, want tmpfs", got)
	}
	if !strings.Contains(m.Output(), "guided recovery mode") {
		t.Errorf("the console did not say /data fell back to tmpfs (guided recovery mode)")
	}
	if got := r["mount /"]; !strings.HasPrefix(got, "/dev/mapper/vroot squashfs ro") {
		t.Errorf("mount / = %q, want the verity root", got)
	}
	checkUnits(t, man, r)
	checkMode(t, man, r, localapi.ModeGuidedRecovery)
	m.Kill()
}

// TestBootTamperedRoot flips one byte in block 0 of the root partition:
// dm-verity must refuse it loudly and the system must not come up.
func TestBootTamperedRoot(t *testing.T) {
	src, man := builtDisk(t)
	disk := copyDisk(t, src)
	p, _ := man.Partition(image.LabelRootA)
	flipByte(t, disk, p.Offset+100)
	qemu.SkipIfUnavailable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	m, err := qemu.Start(ctx, qemu.DefaultConfig(disk))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	// "device-mapper: verity: 254:2: data block 0 is corrupted", then
	// "Kernel panic - not syncing: dm-verity device corrupted".
	if _, err := m.Expect(regexp.MustCompile(`verity: .*data block \d+ is corrupted`), 10*time.Minute); err != nil {
		t.Fatalf("no dm-verity error: %v", err)
	}
	if _, err := m.Expect(regexp.MustCompile(`Kernel panic - not syncing: dm-verity`), 5*time.Minute); err != nil {
		t.Fatalf("no panic after the verity error: %v", err)
	}
	out := m.Output()
	for _, bad := range []string{"Reached target", "vaultpam-report", "Started "} {
		if strings.Contains(out, bad) {
			t.Errorf("the tampered system got as far as %q", bad)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "verity") && (strings.Contains(line, "corrupt") || strings.Contains(line, "panic")) {
			t.Logf("tampered boot: %s", strings.TrimSpace(line))
		}
	}
}
