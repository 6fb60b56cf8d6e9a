package ovf

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	govmomiovf "github.com/vmware/govmomi/ovf"
	"github.com/vmware/govmomi/vim25/types"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testConfig() *Config {
	c := DefaultConfig()
	c.Version = "1.2.3"
	c.FullVersion = "1.2.3 (root 0123abcd)"
	c.Disk = Disk{File: "vaultpam-connector-1.2.3-disk1.vmdk", FileSize: 95 << 20, Capacity: 2 << 30, PopulatedSize: 400 << 20}
	return c
}

func TestDescriptorGolden(t *testing.T) {
	got, err := Descriptor(testConfig())
	if err != nil {
		t.Fatalf("Descriptor: %v", err)
	}
	golden := filepath.Join("testdata", "appliance.ovf")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update ./appliance/ovf)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("Descriptor() differs from %s (-want +got):\n%s", golden, diff)
	}
}

// TestGovmomiConfigSpec parses the descriptor with govmomi, as govc and the
// vSphere importers do, and checks the VM it describes.
func TestGovmomiConfigSpec(t *testing.T) {
	cfg := testConfig()
	cfg.CPUs = 4
	cfg.MemoryMiB = 3072
	b, err := Descriptor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env, err := govmomiovf.Unmarshal(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("govmomi ovf.Unmarshal: %v", err)
	}
	if got := env.References; len(got) != 1 || got[0].Href != cfg.Disk.File || got[0].Size != uint(cfg.Disk.FileSize) {
		t.Errorf("References = %+v, want %s of %d bytes", got, cfg.Disk.File, cfg.Disk.FileSize)
	}
	d := env.Disk.Disks[0]
	if d.Capacity != "2147483648" || d.CapacityAllocationUnits == nil || *d.CapacityAllocationUnits != "byte" || d.Format == nil || *d.Format != FormatStreamOptimized {
		t.Errorf("Disk = %+v, want 2 GiB in bytes, streamOptimized", d)
	}
	hw := env.VirtualSystem.VirtualHardware[0]
	if hw.Transport == nil || *hw.Transport != Transport {
		t.Errorf("transport = %v, want %q", hw.Transport, Transport)
	}

	spec, err := env.ToConfigSpecWithOptions(govmomiovf.ToConfigSpecOptions{Strict: true})
	if err != nil {
		t.Fatalf("ToConfigSpec: %v", err)
	}
	if spec.Firmware != "efi" || spec.Version != "vmx-17" || spec.GuestId != "debian11_64Guest" || spec.NumCPUs != 4 || spec.MemoryMB != 3072 {
		t.Errorf("ConfigSpec firmware=%q version=%q guest=%q cpus=%d memory=%d, want efi vmx-17 debian11_64Guest 4 3072",
			spec.Firmware, spec.Version, spec.GuestId, spec.NumCPUs, spec.MemoryMB)
	}
	if spec.BootOptions == nil || spec.BootOptions.EfiSecureBootEnabled == nil || *spec.BootOptions.EfiSecureBootEnabled {
		t.Errorf("BootOptions = %+v, want secure boot off", spec.BootOptions)
	}
	var kinds []string
	for _, dc := range spec.DeviceChange {
		switch d := dc.GetVirtualDeviceConfigSpec().Device.(type) {
		case *types.ParaVirtualSCSIController:
			kinds = append(kinds, "pvscsi")
		case *types.VirtualIDEController:
			kinds = append(kinds, "ide")
		case *types.VirtualVmxnet3:
			kinds = append(kinds, "vmxnet3")
		case *types.VirtualCdrom:
			kinds = append(kinds, "cdrom")
		case *types.VirtualDisk:
			kinds = append(kinds, "disk")
			if d.CapacityInBytes != cfg.Disk.Capacity {
				t.Errorf("disk CapacityInBytes = %d, want %d", d.CapacityInBytes, cfg.Disk.Capacity)
			}
		default:
			kinds = append(kinds, fmt.Sprintf("%T", d))
		}
	}
	if diff := cmp.Diff([]string{"pvscsi", "ide", "disk", "cdrom", "vmxnet3"}, kinds); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}

	if spec.VAppConfig == nil {
		t.Fatal("ConfigSpec has no vApp config")
	}
	vapp := spec.VAppConfig.GetVmConfigSpec()
	var keys []string
	for _, p := range vapp.Property {
		keys = append(keys, p.Info.Id)
		if !*p.Info.UserConfigurable || p.Info.Type != "string" {
			t.Errorf("property %s: userConfigurable=%v type=%q, want true string", p.Info.Id, *p.Info.UserConfigurable, p.Info.Type)
		}
	}
	want := []string{"vaultpam.token", "vaultpam.control_plane_url", "vaultpam.connector_name", "vaultpam.hostname",
		"vaultpam.ip", "vaultpam.gateway", "vaultpam.dns", "vaultpam.ntp", "vaultpam.proxy",
		"vaultpam.ipv6", "vaultpam.ipv6_gateway", "vaultpam.vlan", "vaultpam.ca_cert"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("vApp property keys (-want +got):\n%s", diff)
	}
	// govmomi's ToConfigSpec drops ovf:password; check it on the parsed
	// envelope, where the importer reads it from.
	for _, p := range env.VirtualSystem.Product[0].Property {
		isPassword := p.Password != nil && *p.Password
		if isPassword != (p.Key == "vaultpam.token") {
			t.Errorf("property %s: password = %v", p.Key, isPassword)
		}
	}
}

func TestValidate(t *testing.T) {
	c := DefaultConfig()
	c.CPUs = 0
	c.MemoryMiB = 100
	c.Firmware = "uefi"
	c.Properties = append(c.Properties, Property{Key: "vaultpam.token"}, Property{Key: "bad key"})
	_, err := Descriptor(c)
	if err == nil {
		t.Fatal("Descriptor(bad config) = nil error")
	}
	for _, want := range []string{"cpus 0", "memory 100", "firmware \"uefi\"", "disk file \"\"", "disk file size 0",
		"disk capacity 0", "\"vaultpam.token\": duplicate", "\"bad key\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := Descriptor(nil); err == nil {
		t.Error("Descriptor(nil) = nil error")
	}
}
