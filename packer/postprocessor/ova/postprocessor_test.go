package ova

import (
	"archive/tar"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// rawArtifact stands in for the vaultpam-appliance builder's artifact.
type rawArtifact struct{ disk string }

func (a rawArtifact) BuilderId() string { return "vaultpam.appliance" }
func (a rawArtifact) Files() []string   { return []string{a.disk} }
func (a rawArtifact) Id() string        { return "abc" }
func (a rawArtifact) String() string    { return a.disk }
func (a rawArtifact) Destroy() error    { return nil }
func (a rawArtifact) State(name string) any {
	switch name {
	case "disk":
		return a.disk
	case "version":
		return "9.8.7"
	case "root_hash":
		return "00ff"
	case "dpkg_status":
		return "/build/dpkg-status"
	}
	return nil
}

func smallDisk(t *testing.T, size int) string {
	t.Helper()
	b := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 64<<10; i++ {
		b[i] = byte(rng.Uint32())
	}
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func configure(t *testing.T, raw map[string]any) (*PostProcessor, error) {
	t.Helper()
	p := New()
	return p, p.Configure(raw)
}

func TestConfigure(t *testing.T) {
	p, err := configure(t, map[string]any{})
	if err != nil {
		t.Fatalf("Configure(defaults): %v", err)
	}
	c := p.config
	if c.OutputDir != "dist" || c.VMName != "vaultpam-connector" || c.CPUs != 2 || c.MemoryMiB != 2048 || c.CompressionLevel != 6 {
		t.Errorf("defaults = %+v", c)
	}
	_, err = configure(t, map[string]any{"cpus": -1, "memory_mib": 100, "disk_size_mib": -5, "compression_level": 12})
	if err == nil {
		t.Fatal("Configure(bad) = nil error")
	}
	for _, want := range []string{"cpus -1", "memory_mib 100", "disk_size_mib -5", "compression_level 12"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestPostProcess(t *testing.T) {
	disk := smallDisk(t, 3<<20)
	dist := filepath.Join(t.TempDir(), "dist")
	p, err := configure(t, map[string]any{"output_dir": dist, "disk_size_mib": 8, "cpus": 3})
	if err != nil {
		t.Fatal(err)
	}
	ui := packersdk.TestUi(t)
	a, keep, force, err := p.PostProcess(context.Background(), ui, rawArtifact{disk})
	if err != nil {
		t.Fatalf("PostProcess: %v", err)
	}
	if !keep || force {
		t.Errorf("keep, force = %v, %v; want true, false", keep, force)
	}
	want := filepath.Join(dist, "vaultpam-connector-9.8.7.ova")
	if got := a.Files(); len(got) != 1 || got[0] != want {
		t.Fatalf("Files() = %v, want [%s]", got, want)
	}
	if a.State("version") != "9.8.7" || a.State("dpkg_status") != "/build/dpkg-status" || a.State("ova_sha256") != a.Id() {
		t.Errorf("artifact state version=%v dpkg_status=%v", a.State("version"), a.State("dpkg_status"))
	}
	f, err := os.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	var desc string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if strings.HasSuffix(h.Name, ".ovf") {
			b, _ := io.ReadAll(tr)
			desc = string(b)
		}
	}
	if strings.Join(names, " ") != "vaultpam-connector-9.8.7.ovf vaultpam-connector-9.8.7.mf vaultpam-connector-9.8.7-disk1.vmdk" {
		t.Errorf("members = %v", names)
	}
	// disk_size_mib pads the 3 MiB image to an 8 MiB virtual disk.
	for _, s := range []string{`ovf:capacity="8388608"`, `<rasd:VirtualQuantity>3</rasd:VirtualQuantity>`, `9.8.7 (root hash 00ff)`} {
		if !strings.Contains(desc, s) {
			t.Errorf("descriptor lacks %s", s)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dist, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestPostProcessErrors(t *testing.T) {
	disk := smallDisk(t, 3<<20)
	p, err := configure(t, map[string]any{"output_dir": t.TempDir(), "disk_size_mib": 2})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = p.PostProcess(context.Background(), packersdk.TestUi(t), rawArtifact{disk})
	if err == nil || !strings.Contains(err.Error(), "disk_size_mib 2 is smaller than the image (3 MiB)") {
		t.Errorf("PostProcess(disk_size_mib too small) = %v", err)
	}
	_, _, _, err = p.PostProcess(context.Background(), packersdk.TestUi(t), rawArtifact{""})
	if err == nil || !strings.Contains(err.Error(), "no raw disk") {
		t.Errorf("PostProcess(no disk) = %v", err)
	}
}
