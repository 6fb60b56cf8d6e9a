package scenario

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/tests/labnet"
	"github.com/vaultpam/appliance/tests/ovfiso"
	"github.com/vaultpam/appliance/tests/qemu"
	"github.com/vaultpam/appliance/tests/vmdisk"
)

// TestConsoleSupportBundle deploys the appliance built by `make image`
// (VAULTPAM_DISK) unattended against the lab, then presses G on the
// serial console: the unprivileged console collects a support bundle,
// the connector sends it through its tunnel, and the lab holds a bundle
// with the ID the screen shows, which decrypts with the lab's key and
// holds the appliance's status, image status, journal and verity status.
func TestConsoleSupportBundle(t *testing.T) {
	qemu.SkipIfUnavailable(t)
	if err := ovfiso.Available(); err != nil {
		t.Skip(err)
	}
	src := os.Getenv("VAULTPAM_DISK")
	if src == "" {
		t.Skip("VAULTPAM_DISK is not set; run `make image` and set it to build/disk.raw")
	}
	dir := t.TempDir()
	net := labnet.New(t, dir)
	disk := filepath.Join(dir, "disk.raw")
	if out, err := exec.Command("cp", "--sparse=always", src, disk).CombinedOutput(); err != nil {
		t.Fatalf("copying the disk: %v\n%s", err, out)
	}
	if err := vmdisk.WriteFiles(disk, "VPAM-CONFIG", map[string]string{"ca.pem": string(net.CA)}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(disk); err != nil {
		t.Fatal(err)
	} else if err := os.Truncate(disk, fi.Size()+256<<20); err != nil {
		t.Fatal(err)
	}
	a := NewAppliance(t, dir, net, qemu.VSphereConfig(disk), "support-1")
	a.Config.MemoryMiB = 2048 // the OVA's default
	a.Config.NoReboot = true
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	Run(ctx, t, a, []Step{
		{"deploy (OVF ISO)", stepDeploy},
		{"support bundle (G)", stepSupportBundle},
	})
}

var reBundleSent = regexp.MustCompile(`Bundle ID +(sb-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8})`)

// stepSupportBundle presses G on the health screen and checks the lab got
// the bundle the screen names.
func stepSupportBundle(ctx context.Context, a *Appliance) error {
	if err := a.Press("g"); err != nil {
		return err
	}
	m, err := a.Expect(reBundleSent, 5*time.Minute)
	if err != nil {
		return err
	}
	id := m[1]
	if _, err := a.Expect(regexp.MustCompile(`Support bundle sent\.`), keyTimeout); err != nil {
		return err
	}
	a.T.Logf("support bundle %s sent %s after power-on", id, a.M.Since().Round(time.Second))
	state := filepath.Join(a.Dir, "lab")
	infos, err := lab.ListBundles(state)
	if err != nil {
		return err
	}
	if len(infos) != 1 || infos[0].ID != id || infos[0].ConnectorID != a.ID {
		return wrong("the lab holds bundles %+v, want one, %s from %s", infos, id, a.ID)
	}
	b, err := lab.OpenBundle(state, id)
	if err != nil {
		return wrong("the bundle does not open with the lab's key: %v", err)
	}
	parts := map[string]string{}
	for _, p := range b.Parts {
		parts[p.Name] = string(p.Data)
	}
	var bad []string
	for name, want := range map[string]string{
		"status.json":                    `"connector_id": "` + a.ID + `"`,
		"image/status.json":              `"slot": "A"`,
		"verity/dmsetup-status.txt":      " verity V",
		"journal/vaultpam-connector.log": "vaultpam-connector",
		"journal/kernel.log":             "Linux version",
		"network/addresses.txt":          "inet 10.0.2.15/",
		"network/routes.txt":             " src 10.0.2.15",
		"config/connector.yaml":          "control_plane_url:",
	} {
		if !strings.Contains(parts[name], want) {
			bad = append(bad, fmt.Sprintf("part %s lacks %q:\n%s", name, want, tail(parts[name], 1500)))
		}
	}
	for _, p := range b.Manifest.Parts {
		if p.Error != "" {
			a.T.Logf("part %s: %s", p.Name, p.Error)
		}
	}
	if len(bad) > 0 {
		return wrong("the bundle's parts:\n%s", strings.Join(bad, "\n"))
	}
	if err := a.Press("\x1b"); err != nil {
		return err
	}
	_, err = a.Expect(reHealth, keyTimeout)
	return err
}
