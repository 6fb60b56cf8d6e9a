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

// TestBootConsoleImage boots a configured appliance whose connector
// cannot reach its control plane and checks, over the serial console,
// what the unprivileged console reaches through its group vaultpam on the
// real image: the image updater's socket (/run/vaultpam-update/update.sock: the
// Image row comes from the updater, with the other slot), O saying why
// there is nothing to roll back to, and G saying the tunnel is down and
// offering the diagnostics instead of sending a support bundle.
func TestBootConsoleImage(t *testing.T) {
	src, man := builtDisk(t)
	if !installed(man, "vaultpam-console") || !installed(man, "vaultpam-update") {
		t.Skip("vaultpam-console or vaultpam-update is not in the image; run make build image")
	}
	qemu.SkipIfUnavailable(t)
	disk := copyDisk(t, src)
	writeConfigFiles(t, disk, man, map[string]string{"connector.yaml": testConfig, "hostname": "vpam-image-test\n"})
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
	// The Image row as the updater reports it ("no image updater at …:
	// permission denied" if the console could not use its socket).
	expect(`\d+\.\d+\.\d+ in slot A; slot B empty`, 3*time.Minute)
	t.Logf("the Image row from the updater %s after QEMU started", m.Since().Round(time.Second))
	send("\x0c")
	expect(`R re-enrol`, time.Minute)

	send("o")
	expect(`Rollback is not possible: slot B holds no image\.`, time.Minute)

	send("g")
	expect(`The tunnel is down: the bundle was not sent\.`, 2*time.Minute)
	expect(`D diagnostics`, time.Minute)
	send("\x1b")
	expect(`R re-enrol`, time.Minute)
}
