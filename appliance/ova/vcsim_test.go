package ova

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vaultpam/appliance/appliance/ova/ovatest"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/ovf/importer"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// TestImportVcsim imports the OVA into govmomi's simulator (ESX model, one host and pool) the way
// `govc import.ova` does (TapeArchive + importer.Importer), with a vApp
// property set, and checks the VM that comes out. vcsim listens on
// loopback only.
func TestImportVcsim(t *testing.T) {
	dir := t.TempDir()
	raw := testDisk(t, 4<<20)
	diskPath := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(diskPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	importVcsim(t, diskPath, testConfig(t))
}

// TestImportVcsimWithCert imports an OVA that carries a VMware .cert.
func TestImportVcsimWithCert(t *testing.T) {
	dir := t.TempDir()
	raw := testDisk(t, 4<<20)
	diskPath := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(diskPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	chain := ovatest.New(t, ovatest.Options{})
	pub, err := LoadPublisher(chain.KeyPath, chain.CertPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Publisher = pub
	res := importVcsim(t, diskPath, cfg)
	if res.CertName != "vaultpam-connector-1.2.3.cert" {
		t.Errorf("the imported OVA has no .cert (CertName %q)", res.CertName)
	}
}

// TestImportApplianceVcsim does the same with the real appliance disk.
func TestImportApplianceVcsim(t *testing.T) {
	diskPath := os.Getenv("VAULTPAM_DISK")
	if diskPath == "" {
		t.Skip("VAULTPAM_DISK not set; run `make image` (make test sets it)")
	}
	if _, err := os.Stat(diskPath); err != nil {
		t.Skipf("VAULTPAM_DISK: %v; run `make image`", err)
	}
	importVcsim(t, diskPath, testConfig(t))
}

// importVcsim builds an OVA from diskPath with cfg and imports it.
func importVcsim(t *testing.T, diskPath string, cfg *Config) *Result {
	t.Helper()
	fi, err := os.Stat(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	ovaPath := filepath.Join(t.TempDir(), "vaultpam-connector-1.2.3.ova")
	res, err := BuildFile(context.Background(), ovaPath, diskPath, cfg)
	if err != nil {
		t.Fatalf("BuildFile: %v", err)
	}

	model := simulator.ESX()
	defer model.Remove()
	if err := model.Create(); err != nil {
		t.Fatal(err)
	}
	simulator.Test(func(ctx context.Context, c *vim25.Client) {
		finder := find.NewFinder(c)
		dc, err := finder.DefaultDatacenter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		finder.SetDatacenter(dc)
		ds, err := finder.DefaultDatastore(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pool, err := finder.DefaultResourcePool(ctx)
		if err != nil {
			t.Fatal(err)
		}
		folders, err := dc.Folders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		archive := &importer.TapeArchive{Path: ovaPath}
		archive.Client = c
		imp := importer.Importer{
			Client: c, Finder: finder, Datacenter: dc, Datastore: ds,
			ResourcePool: pool, Folder: folders.VmFolder, Archive: archive,
			Log: func(string) (int, error) { return 0, nil },
		}

		// The manifest parses the way govc reads it.
		if err := imp.ReadManifest("*.ovf"); err != nil {
			t.Fatalf("ReadManifest: %v", err)
		}
		if sum := imp.Manifest[res.DiskName]; sum == nil || sum.Algorithm != "SHA256" || sum.Checksum != res.DiskSHA256 {
			t.Errorf("manifest entry for %s = %+v, want SHA256 %s", res.DiskName, sum, res.DiskSHA256)
		}

		spec, err := importer.Spec("*.ovf", archive, false, false)
		if err != nil {
			t.Fatalf("importer.Spec: %v", err)
		}
		if len(spec.PropertyMapping) != 13 {
			t.Errorf("import spec has %d properties, want %d: %+v", len(spec.PropertyMapping), 13, spec.PropertyMapping)
		}
		url := "https://cp.example.com:8443"
		opts := importer.Options{
			Name: ptr("connector-1"),
			PropertyMapping: []importer.Property{
				{KeyValue: importer.KeyValue{Key: "vaultpam.control_plane_url", Value: url}},
			},
		}
		ref, err := imp.Import(ctx, "*.ovf", opts)
		if err != nil {
			t.Fatalf("Import: %v", err)
		}
		vm := object.NewVirtualMachine(c, *ref)
		var o mo.VirtualMachine
		if err := vm.Properties(ctx, vm.Reference(), []string{"config"}, &o); err != nil {
			t.Fatal(err)
		}
		cfg := o.Config
		if cfg.Name != "connector-1" || cfg.GuestId != "debian11_64Guest" || cfg.Version != "vmx-17" ||
			cfg.Hardware.NumCPU != 2 || cfg.Hardware.MemoryMB != 2048 {
			t.Errorf("VM name=%q guest=%q version=%q cpus=%d memory=%d", cfg.Name, cfg.GuestId, cfg.Version, cfg.Hardware.NumCPU, cfg.Hardware.MemoryMB)
		}
		devs := object.VirtualDeviceList(cfg.Hardware.Device)
		if len(devs.SelectByType((*types.ParaVirtualSCSIController)(nil))) != 1 ||
			len(devs.SelectByType((*types.VirtualVmxnet3)(nil))) != 1 ||
			len(devs.SelectByType((*types.VirtualCdrom)(nil))) != 1 {
			t.Errorf("VM devices lack pvscsi, vmxnet3 or the CD-ROM: %v", devs)
		}
		disks := devs.SelectByType((*types.VirtualDisk)(nil))
		if len(disks) != 1 || disks[0].(*types.VirtualDisk).CapacityInBytes != fi.Size() {
			t.Errorf("VM disks = %v, want one of %d bytes", disks, fi.Size())
		}
		if cfg.VAppConfig == nil {
			t.Fatal("VM has no vApp config")
		}
		props := map[string]types.VAppPropertyInfo{}
		for _, p := range cfg.VAppConfig.GetVmConfigInfo().Property {
			props[p.Id] = p
		}
		for _, k := range []string{"vaultpam.token", "vaultpam.control_plane_url", "vaultpam.connector_name",
			"vaultpam.hostname", "vaultpam.ip", "vaultpam.gateway", "vaultpam.dns", "vaultpam.ntp", "vaultpam.proxy"} {
			p, ok := props[k]
			if !ok {
				t.Errorf("vApp property %s missing", k)
				continue
			}
			if p.UserConfigurable == nil || !*p.UserConfigurable {
				t.Errorf("vApp property %s is not user-configurable", k)
			}
		}
		if got := props["vaultpam.control_plane_url"].Value; got != url {
			t.Errorf("vaultpam.control_plane_url = %q, want %q", got, url)
		}
		if !bytes.Contains(res.Descriptor, []byte(`ovf:key="vaultpam.token" ovf:type="string" ovf:password="true"`)) {
			t.Error("the token property is not a password")
		}
	}, model)
	return res
}

func ptr[T any](v T) *T { return &v }
