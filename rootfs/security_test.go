package rootfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// unitCeilings is the highest exposure `systemd-analyze security` may give
// each service unit the appliance ships (0 = locked down, 10 = unsafe);
// rootfs/README.md ("Unit hardening") gives each one's score and why.
// A unit found in the tree without a line here fails the test.
var unitCeilings = map[string]float64{
	// The connector faces the network and the control plane.
	"vaultpam-connector.service": 2.0,
	// The console parses keystrokes and OVF/ISO input, unprivileged; its
	// helper is the one privileged path.
	"vaultpam-console-tty1.service":   5.0,
	"vaultpam-console-serial.service": 5.0,
	"vaultpam-console-helper.service": 6.0,
	// The root's one-shot units, root by nature (mounts at boot).
	"vaultpam-config.service":      6.0,
	"vaultpam-data.service":        6.0,
	"vaultpam-boot-report.service": 6.0,
	// Restores the network of a change on trial not kept in time: the
	// console helper's sandbox.
	"vaultpam-network-revert.service": 6.0,
	// The updater writes block devices and the ESP.
	"vaultpam-update.service":      6.0,
	"vaultpam-update-gate.service": 6.0,
}

// unitDirs are where the repository keeps the units that go into the
// image, relative to the repository root: beside each program, and the
// root's own.
var unitDirs = []string{
	"connector/cmd/vaultpam-connector",
	"firstboot/cmd/vaultpam-console",
	"update/cmd/vaultpam-update",
	"rootfs/overlay/usr/lib/systemd/system",
}

var reExposure = regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`)

// analyzer returns systemd-analyze, or skips: it must know --offline
// (systemd 250 or later).
func analyzer(t *testing.T) string {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("needs systemd-analyze (Debian package systemd; make deps installs it)")
	}
	out, _ := exec.Command(sa, "--version").Output()
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Skipf("systemd-analyze --version said %q", out)
	}
	if v, err := strconv.Atoi(f[1]); err != nil || v < 250 {
		t.Skipf("systemd-analyze is systemd %s; security --offline needs 250 or later", f[1])
	}
	return sa
}

// exposure runs `systemd-analyze security --offline=true` on the unit
// named name in tree (a root directory) and returns its overall exposure.
// A warning about the unit file (an unknown key, a bad value: systemd
// would ignore the setting) fails the test.
func exposure(t *testing.T, sa, tree, name string) float64 {
	t.Helper()
	cmd := exec.Command(sa, "security", "--offline=true", "--root="+tree, "--no-pager", name)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("systemd-analyze security %s: %v\n%s", name, err, stderr.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l != "" {
			t.Errorf("systemd-analyze warns about %s: %s", name, l)
		}
	}
	m := reExposure.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure for %s in:\n%s", name, out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestUnitSecurity holds every service unit the image ships to its
// ceiling in unitCeilings, as systemd-analyze scores it offline.
func TestUnitSecurity(t *testing.T) {
	sa := analyzer(t)
	var units []string
	for _, d := range unitDirs {
		m, _ := filepath.Glob(filepath.Join("..", d, "*.service"))
		units = append(units, m...)
	}
	if len(units) < 6 {
		t.Fatalf("found only %d units in %v: run from rootfs/", len(units), unitDirs)
	}
	tree := filepath.Join(t.TempDir(), "root")
	dir := filepath.Join(tree, "usr/lib/systemd/system")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(u)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	for _, u := range units {
		name := filepath.Base(u)
		seen = append(seen, name)
		ceiling, ok := unitCeilings[name]
		if !ok {
			t.Errorf("%s has no exposure ceiling: add it to unitCeilings (rootfs/security_test.go) and its row to rootfs/README.md", u)
			continue
		}
		got := exposure(t, sa, tree, name)
		t.Logf("%-34s exposure %.1f (ceiling %.1f)", name, got, ceiling)
		if got > ceiling {
			t.Errorf("%s: exposure %.1f, above its ceiling %.1f; harden it (rootfs/README.md, \"Unit hardening\")", u, got, ceiling)
		}
	}
	for name := range unitCeilings {
		if !slices.Contains(seen, name) {
			t.Logf("%s is not in this tree (yet); its ceiling is %.1f", name, unitCeilings[name])
		}
	}
}

// TestPackagedConnectorUnitSecurity: the DEB and RPM ship the same
// connector unit with a drop-in that moves its paths; together they stay
// under the connector's ceiling.
func TestPackagedConnectorUnitSecurity(t *testing.T) {
	sa := analyzer(t)
	const unit = "vaultpam-connector.service"
	dir := filepath.Join(t.TempDir(), "root/usr/lib/systemd/system")
	if err := os.MkdirAll(filepath.Join(dir, unit+".d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{
		"../connector/cmd/vaultpam-connector/" + unit: filepath.Join(dir, unit),
		"../deploy/nativepkg/files/10-package.conf":   filepath.Join(dir, unit+".d/10-package.conf"),
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := exposure(t, sa, filepath.Dir(filepath.Dir(filepath.Dir(dir))), unit)
	t.Logf("%s with the packages' drop-in: exposure %.1f", unit, got)
	if got > unitCeilings[unit] {
		t.Errorf("packaged %s: exposure %.1f, above %.1f", unit, got, unitCeilings[unit])
	}
}
