package nativepkg

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/deploy/internal/shapetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	shapetest.Cleanup()
	os.Exit(code)
}

// unitPath is the connector's hardened unit in this repository.
func unitPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"connector/cmd/vaultpam-connector/vaultpam-connector.service", "rootfs/overlay/usr/lib/systemd/system/vaultpam-connector.service"} {
		full := filepath.Join(shapetest.RepoRoot(t), p)
		if _, err := os.Stat(full); err == nil {
			return full
		}
	}
	t.Fatal("the connector's systemd unit is not in the repository")
	return ""
}

func testConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.Binary = shapetest.Binary(t, shapetest.ConnectorPkg)
	c.Unit = unitPath(t)
	c.Version = "0.1.0"
	c.MTime = time.Unix(1767225600, 0).UTC()
	c.OutDir = t.TempDir()
	return c
}

// buildOnce builds the packages once for the tests that only read them.
func buildPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	out, err := Build(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return out[0], out[1]
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (make deps installs it)", name)
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func TestConfigValidate(t *testing.T) {
	err := Config{Binary: "/nonexistent"}.Validate()
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, want := range []string{"binary: ", "unit is not set", "version is not set", "mtime is not set", "output directory is not set"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, lacks %q", err, want)
		}
	}
}

// Same inputs, same bytes: both packages are reproducible.
func TestReproducible(t *testing.T) {
	c := testConfig(t)
	a, err := Build(c)
	if err != nil {
		t.Fatal(err)
	}
	c.OutDir = t.TempDir()
	b, err := Build(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		x, _ := os.ReadFile(a[i])
		y, _ := os.ReadFile(b[i])
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds", filepath.Base(a[i]))
		}
		t.Logf("%s: %d bytes, same twice", filepath.Base(a[i]), len(x))
	}
}

// The RPM as rpm sees it: what it requires, its scriptlets (which never
// enrol), its conffile and files; it installs into an empty directory
// with rpm --root, verifies there and erases cleanly.
func TestRPM(t *testing.T) {
	_, rpm := buildPackages(t)
	if got := filepath.Base(rpm); got != "vaultpam-connector-0.1.0-1.x86_64.rpm" {
		t.Errorf("rpm name %s", got)
	}
	req := run(t, "rpm", "-qp", "--requires", rpm)
	if !strings.Contains(req, "systemd\n") {
		t.Errorf("rpm -qp --requires:\n%s\nwant systemd", req)
	}
	t.Logf("rpm -qp --requires:\n%s", req)
	scripts := run(t, "rpm", "-qp", "--scripts", rpm)
	for _, want := range []string{"postinstall scriptlet", "systemd-sysusers vaultpam-connector.conf", "systemctl enable vaultpam-connector.service",
		"preuninstall scriptlet", "systemctl disable --now vaultpam-connector.service", "postuninstall scriptlet"} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm -qp --scripts lacks %q", want)
		}
	}
	for _, never := range []string{"vaultpam-connector enrol\n", "vaultpam-connector run", "PAM_ENROLMENT_TOKEN"} {
		for _, l := range strings.Split(scripts, "\n") {
			if strings.Contains(l, never) && !strings.Contains(strings.TrimSpace(l), "#") && !strings.Contains(l, "(type the token") {
				t.Errorf("a scriptlet runs %q: %s", never, l)
			}
		}
	}
	if cf := run(t, "rpm", "-qp", "--configfiles", rpm); strings.TrimSpace(cf) != ConfigPath {
		t.Errorf("rpm config files = %q, want %s", cf, ConfigPath)
	}
	list := run(t, "rpm", "-qlp", rpm)
	for _, want := range []string{BinaryPath, UnitPath, DropInPath, SysusersPath, ConfigPath, DocPath, "/etc/vaultpam"} {
		if !strings.Contains(list, want+"\n") {
			t.Errorf("rpm -qlp lacks %s:\n%s", want, list)
		}
	}

	root := t.TempDir()
	run(t, "rpm", "--root", root, "--initdb")
	// --noscripts: the directory has no /bin/sh or systemd to run them
	// with (the DEB test runs the scripts in a booted system);
	// --nodeps: nor an rpm database that provides systemd.
	run(t, "rpm", "--root", root, "-i", "--nodeps", "--noscripts", rpm)
	if q := run(t, "rpm", "--root", root, "-q", "vaultpam-connector"); !strings.HasPrefix(q, "vaultpam-connector-0.1.0-1.x86_64") {
		t.Errorf("rpm -q = %q", q)
	}
	if v := run(t, "rpm", "--root", root, "-V", "--nodeps", "vaultpam-connector"); v != "" {
		t.Errorf("rpm -V after install:\n%s", v)
	}
	st, err := os.Stat(filepath.Join(root, BinaryPath))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("installed connector: %v %v", st, err)
	}
	unit, _ := os.ReadFile(filepath.Join(root, UnitPath))
	orig, _ := os.ReadFile(unitPath(t))
	if !bytes.Equal(unit, orig) {
		t.Error("the installed unit is not the appliance's unit")
	}
	run(t, "rpm", "--root", root, "-e", "--noscripts", "vaultpam-connector")
	for _, p := range []string{BinaryPath, UnitPath, "/etc/vaultpam", filepath.Dir(DropInPath), filepath.Dir(DocPath)} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s is left after rpm -e", p)
		}
	}
}

// The DEB as dpkg-deb sees it: conffile, scripts, file modes, the unit
// byte for byte, the drop-in that moves the paths.
func TestDeb(t *testing.T) {
	deb, _ := buildPackages(t)
	if got := filepath.Base(deb); got != "vaultpam-connector_0.1.0_amd64.deb" {
		t.Errorf("deb name %s", got)
	}
	dir := t.TempDir()
	run(t, "dpkg-deb", "-R", deb, dir)
	if cf, _ := os.ReadFile(filepath.Join(dir, "DEBIAN", "conffiles")); strings.TrimSpace(string(cf)) != ConfigPath {
		t.Errorf("conffiles = %q", cf)
	}
	control, _ := os.ReadFile(filepath.Join(dir, "DEBIAN", "control"))
	for _, want := range []string{"Package: vaultpam-connector\n", "Version: 0.1.0\n", "Architecture: amd64\n", "Depends: systemd\n"} {
		if !strings.Contains(string(control), want) {
			t.Errorf("control lacks %q:\n%s", want, control)
		}
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		st, err := os.Stat(filepath.Join(dir, "DEBIAN", s))
		if err != nil || st.Mode().Perm()&0o111 == 0 {
			t.Errorf("DEBIAN/%s: %v %v", s, st, err)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dir, UnitPath))
	orig, _ := os.ReadFile(unitPath(t))
	if !bytes.Equal(unit, orig) {
		t.Error("the packaged unit is not the appliance's unit")
	}
	dropIn, _ := os.ReadFile(filepath.Join(dir, DropInPath))
	for _, want := range []string{"ConditionPathExists=\nConditionPathExists=/etc/vaultpam/connector.yaml", "ReadWritePaths=\nReadWritePaths=/var/lib/vaultpam",
		"Environment=PAM_AGENT_CONFIG=/etc/vaultpam/connector.yaml", "Environment=PAM_AGENT_DATA_DIR=/var/lib/vaultpam", "RestartPreventExitStatus=3"} {
		if !strings.Contains(string(dropIn), want) {
			t.Errorf("drop-in lacks %q", want)
		}
	}
}
