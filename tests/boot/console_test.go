package boot

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/vaultpam/appliance/tests/qemu"
)

// TestBootConsoleHelper boots a configured appliance and uses the health
// screen over the serial console for what the unprivileged console cannot
// do itself: the root verity line (dmsetup, through the helper), the
// connector's log (L: the journal, through the group systemd-journal) and
// a reboot (B, Y: through the helper, which has no CAP_SYS_BOOT; systemd
// reboots). Before the reboot, what the console reaches with its groups
// alone: the Image row from the updater's socket (group vaultpam), O saying
// why there is nothing to roll back to, G with the tunnel down. After the
// reboot (in place: QEMU resets the machine) the console is back on the
// serial line. One boot carries all of it.
func TestBootConsoleHelper(t *testing.T) {
	src, man := builtDisk(t)
	if !installed(man, "vaultpam-console") || !installed(man, "vaultpam-update") {
		t.Skip("vaultpam-console or vaultpam-update is not in the image; run make build image")
	}
	qemu.SkipIfUnavailable(t)
	disk := copyDisk(t, src)
	writeConfigFiles(t, disk, man, map[string]string{"connector.yaml": testConfig, "hostname": "vpam-console-test\n"})
	logFile, err := os.Create(filepath.Join(t.TempDir(), "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cfg := qemu.DefaultConfig(disk)
	cfg.Log = logFile
	m, err := qemu.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	expect := func(re string, timeout time.Duration) {
		t.Helper()
		if _, err := m.Expect(regexp.MustCompile(re), timeout); err != nil {
			t.Fatalf("serial console: %v", err)
		}
	}
	send := func(s string) {
		t.Helper()
		time.Sleep(300 * time.Millisecond) // let the console draw before typing on
		if err := m.Send([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	expect(`vaultpam-report: end`, 10*time.Minute)
	// The verity probe runs in the background: its line fills in, before
	// or after the report's repaint (which draws the key help after it).
	expect(`on, no corruption seen \(root hash [0-9a-f]{12}\.\.\.\)`, 3*time.Minute)
	t.Logf("health screen with the verity status %s after QEMU started", m.Since().Round(time.Second))
	send("\x0c") // Ctrl-L: the whole screen again, key help included
	expect(`R re-enrol`, time.Minute)

	send("l")
	expect(`vaultpam-connector\[\d+\]:`, time.Minute)
	send("\x1b")
	expect(`R re-enrol`, time.Minute)

	send("\x0c") // the whole screen again: the Image row may have been drawn before
	expect(`\d+\.\d+\.\d+ in slot A; slot B empty`, 3*time.Minute)
	t.Logf("the Image row from the updater %s after QEMU started", m.Since().Round(time.Second))
	send("o")
	expect(`Rollback is not possible: slot B holds no image\.`, time.Minute)
	send("g")
	expect(`The tunnel is down: the bundle was not sent\.`, 2*time.Minute)
	expect(`D diagnostics`, time.Minute)
	send("\x1b")
	expect(`R re-enrol`, time.Minute)

	send("b")
	expect(`Reboot the appliance\?`, time.Minute)
	send("y")
	expect(`reboot: Restarting system`, 5*time.Minute)
	t.Logf("rebooted %s after QEMU started", m.Since().Round(time.Second))
	expect(`Started .*(VaultPAM console \(ttyS0\)|vaultpam-console-serial)`, 10*time.Minute)
	expect(`R re-enrol`, 5*time.Minute)
}
