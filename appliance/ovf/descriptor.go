package ovf

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// Transport is the ovf:transport of the hardware section: vSphere hands the
// OVF environment to the guest through guestinfo (VMware tools) and, for
// guests without tools, as ovf-env.xml on an ISO in the CD-ROM drive.
const Transport = "com.vmware.guestInfo iso"

// Instance IDs of the hardware items; the disk and CD-ROM name their
// controllers by these.
const (
	idCPU = iota + 1
	idMemory
	idSCSI
	idIDE
	idDisk
	idCDROM
	idNIC
)

// Descriptor renders the OVF descriptor for cfg.
func Descriptor(cfg *Config) ([]byte, error) {
	if cfg == nil {
		return nil, fmt.Errorf("ovf: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ovf config: %w", err)
	}
	no, yes := false, true
	env := envelope{
		XMLNS: nsOVF, XMLNSCIM: nsCIM, XMLNSOVF: nsOVF, XMLNSRASD: nsRASD,
		XMLNSVMW: nsVMW, XMLNSVSSD: nsVSSD, XMLNSXSI: nsXSI,
		References: references{Files: []fileRef{{Href: cfg.Disk.File, ID: "file1", Size: cfg.Disk.FileSize}}},
		DiskSection: diskSection{
			Info: "Virtual disk information",
			Disks: []diskDesc{{
				Capacity:      cfg.Disk.Capacity,
				CapacityUnits: "byte",
				DiskID:        "vmdisk1",
				FileRef:       "file1",
				Format:        FormatStreamOptimized,
				PopulatedSize: cfg.Disk.PopulatedSize,
			}},
		},
		Network: network{
			Info:     "The list of logical networks",
			Networks: []netDesc{{Name: cfg.Network, Description: "The network the connector reaches the control plane and the targets through"}},
		},
		VirtualSystem: virtualSystem{
			ID:   cfg.Name,
			Info: "A virtual machine",
			Name: cfg.Name,
			OS: operatingSystem{
				ID:     cfg.OSID,
				OSType: cfg.GuestOS,
				Info:   "The kind of installed guest operating system",
			},
			Hardware: hardwareSection{
				Transport: Transport,
				Info:      "Virtual hardware requirements",
				System: system{
					ElementName:             "Virtual Hardware Family",
					InstanceID:              0,
					VirtualSystemIdentifier: cfg.Name,
					VirtualSystemType:       cfg.HardwareVersion,
				},
				Items: []item{
					{AllocationUnits: "hertz * 10^6", Description: "Number of Virtual CPUs",
						ElementName: fmt.Sprintf("%d virtual CPU(s)", cfg.CPUs), InstanceID: idCPU,
						ResourceType: rtProcessor, VirtualQuantity: int64(cfg.CPUs)},
					{AllocationUnits: "byte * 2^20", Description: "Memory Size",
						ElementName: fmt.Sprintf("%dMB of memory", cfg.MemoryMiB), InstanceID: idMemory,
						ResourceType: rtMemory, VirtualQuantity: int64(cfg.MemoryMiB)},
					{Address: "0", Description: "SCSI Controller", ElementName: "SCSI Controller 0",
						InstanceID: idSCSI, ResourceSubType: "VirtualSCSI", ResourceType: rtSCSIController},
					{Address: "0", Description: "IDE Controller", ElementName: "IDE Controller 0",
						InstanceID: idIDE, ResourceType: rtIDEController},
					{AddressOnParent: "0", ElementName: "Hard Disk 1", HostResource: "ovf:/disk/vmdisk1",
						InstanceID: idDisk, Parent: idSCSI, ResourceType: rtDiskDrive},
					{AddressOnParent: "0", AutomaticAllocation: &no, Description: "CD-ROM for the OVF environment (iso transport)",
						ElementName: "CD-ROM 1", InstanceID: idCDROM, Parent: idIDE,
						ResourceSubType: "vmware.cdrom.remotepassthrough", ResourceType: rtCDDrive},
					{AddressOnParent: "7", AutomaticAllocation: &yes, Connection: cfg.Network,
						Description: "VMXNET3 ethernet adapter on \"" + cfg.Network + "\"", ElementName: "Network adapter 1",
						InstanceID: idNIC, ResourceSubType: "VmxNet3", ResourceType: rtEthernetAdapter,
						Config: []vmwConfig{{Key: "wakeOnLanEnabled", Value: "false"}}},
				},
				Config: []vmwConfig{
					{Key: "firmware", Value: cfg.Firmware},
					{Key: "bootOptions.efiSecureBootEnabled", Value: "false"},
					{Key: "tools.syncTimeWithHost", Value: "false"},
					{Key: "powerOpInfo.powerOffType", Value: "soft"},
					{Key: "powerOpInfo.resetType", Value: "soft"},
				},
			},
			Product: productSection{
				Required:    false,
				Info:        "VaultPAM Connector first-boot settings",
				Product:     cfg.Product,
				Vendor:      cfg.Vendor,
				Version:     cfg.Version,
				FullVersion: cfg.FullVersion,
				ProductURL:  cfg.ProductURL,
			},
		},
	}
	if cfg.Annotation != "" {
		env.VirtualSystem.Annotate = &annotation{Info: "A human-readable annotation", Annotation: cfg.Annotation}
	}
	lastCategory := ""
	for _, p := range cfg.Properties {
		if p.Category != "" && p.Category != lastCategory {
			env.VirtualSystem.Product.Entries = append(env.VirtualSystem.Product.Entries, category{Text: p.Category})
			lastCategory = p.Category
		}
		env.VirtualSystem.Product.Entries = append(env.VirtualSystem.Product.Entries, property{
			Key: p.Key, Type: "string", Password: p.Password, Qualifiers: p.Qualifiers,
			UserConfigurable: true, Label: p.Label, Description: p.Description,
		})
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(env); err != nil {
		return nil, fmt.Errorf("encoding ovf: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}
