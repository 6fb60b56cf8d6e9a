package main

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// packerEnv installs the plugin into a fresh plugin directory and returns
// the environment for running the real Packer (VAULTPAM_PACKER) offline.
func packerEnv(t *testing.T) (packer string, env []string) {
	t.Helper()
	packer = os.Getenv("VAULTPAM_PACKER")
	if packer == "" {
		t.Skip("VAULTPAM_PACKER not set; run `make tools` (make test sets it)")
	}
	if _, err := os.Stat(packer); err != nil {
		t.Skipf("VAULTPAM_PACKER: %v; run `make tools`", err)
	}
	plugin, err := buildPlugin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env = append(os.Environ(),
		"CHECKPOINT_DISABLE=1", // no update check over the network
		"PACKER_PLUGIN_PATH="+filepath.Join(dir, "plugins"),
		"PACKER_CONFIG_DIR="+filepath.Join(dir, "config"),
		"PACKER_CACHE_DIR="+filepath.Join(dir, "cache"),
	)
	run(t, packer, env, "plugins", "install", "--path", plugin, "github.com/vaultpam/vaultpam")
	return packer, env
}

// pluginDir holds the plugin built once for all tests; TestMain removes it.
var pluginDir string

var buildPlugin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "vaultpam-plugin-")
	if err != nil {
		return "", err
	}
	pluginDir = dir
	plugin := filepath.Join(dir, "packer-plugin-vaultpam")
	if out, err := exec.Command("go", "build", "-o", plugin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the plugin: %v\n%s", err, out)
	}
	return plugin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if pluginDir != "" {
		os.RemoveAll(pluginDir)
	}
	os.Exit(code)
}

func run(t *testing.T, name string, env []string, args ...string) string {
	t.Helper()
	out, err := command(name, env, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

func command(name string, env []string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestPackerValidate checks the release template with the real Packer:
// valid as shipped, and each out-of-range variable fails with a message
// naming it.
func TestPackerValidate(t *testing.T) {
	packer, env := packerEnv(t)
	template := filepath.Join("..", "..")
	binDir := t.TempDir()

	out := run(t, packer, env, "validate", "-var", "bin_dir="+binDir, template)
	if !strings.Contains(out, "The configuration is valid") {
		t.Errorf("packer validate: %s", out)
	}

	for _, tc := range []struct{ arg, want string }{
		{"cpus=0", "The cpus variable must be"},
		{"cpus=1.5", "The cpus variable must be"},
		{"disk_size_mib=100", "The disk_size_mib variable must be"},
		{"memory_mib=100", "The memory_mib variable must be"},
		{"version=latest", "The version variable must be"},
		{"version=0.2.0-rc1", "no -rc suffix"},
		{"debian_mirror=ftp.debian.org", "The debian_mirror variable must be"},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			out, err := command(packer, env, "validate", "-var", "bin_dir="+binDir, "-var", tc.arg, template)
			if err == nil {
				t.Fatalf("packer validate -var %s succeeded:\n%s", tc.arg, out)
			}
			if !strings.Contains(strings.Join(strings.Fields(out), " "), tc.want) {
				t.Errorf("packer validate -var %s:\n%s\nwant a message containing %q", tc.arg, out, tc.want)
			}
		})
	}

	// A bin_dir that does not exist is caught by the builder's Prepare.
	out, err := command(packer, env, "validate", "-var", "bin_dir="+filepath.Join(binDir, "nope"), template)
	if err == nil || !strings.Contains(out, "bin_dir") || !strings.Contains(out, "run make build first") {
		t.Errorf("packer validate with a missing bin_dir: err=%v\n%s", err, out)
	}
}

// TestPackerBuildOVA runs `packer build` with the real Packer and plugin:
// the bundled file builder supplies a small raw disk, vaultpam-ova turns it
// into an OVA.
func TestPackerBuildOVA(t *testing.T) {
	packer, env := packerEnv(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "in.raw")
	b := make([]byte, 4<<20)
	copy(b[1<<20:], strings.Repeat("vaultpam", 10000))
	if err := os.WriteFile(disk, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	log := run(t, packer, env, "build", "-color=false", "-var", "disk="+disk, "-var", "out="+out, "testdata/ova-from-file.pkr.hcl")
	if !strings.Contains(log, "vaultpam-connector-0.0.1-test.ova") {
		t.Errorf("packer build output does not name the OVA:\n%s", log)
	}
	f, err := os.Open(filepath.Join(out, "vaultpam-connector-0.0.1-test.ova"))
	if err != nil {
		t.Fatalf("no OVA: %v\n%s", err, log)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	h, err := tr.Next()
	if err != nil || h.Name != "vaultpam-connector-0.0.1-test.ovf" {
		t.Fatalf("first member = %v, %v; want the .ovf", h, err)
	}
	desc, _ := io.ReadAll(tr)
	for _, s := range []string{`ovf:capacity="16777216"`, `<rasd:VirtualQuantity>3</rasd:VirtualQuantity>`} {
		if !strings.Contains(string(desc), s) {
			t.Errorf("descriptor lacks %s", s)
		}
	}
}
