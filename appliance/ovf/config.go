// Package ovf writes the OVF 1.0 descriptor of the VaultPAM Connector
// appliance: one virtual machine (vmx-17, EFI firmware, Debian 64-bit,
// pvscsi disk, vmxnet3 NIC, IDE CD-ROM for the ISO transport) and a
// ProductSection whose user-configurable properties pre-set the first-boot
// settings through the com.vmware.guestInfo or iso transport.
package ovf

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Config describes the appliance VM. A nil *Config is not accepted: the
// disk fields have no sensible default.
type Config struct {
	// Name is the VirtualSystem id and the default VM name.
	Name string
	// Product, Vendor, Version and FullVersion fill the ProductSection.
	Product     string
	Vendor      string
	Version     string
	FullVersion string
	ProductURL  string
	// Annotation is shown in the vSphere UI's notes; empty = none.
	Annotation string

	CPUs      int
	MemoryMiB int
	// HardwareVersion is the vssd:VirtualSystemType, e.g. "vmx-17"
	// (vSphere 7.0 and later).
	HardwareVersion string
	// GuestOS is the vmw:osType; OSID the matching CIM id (96 = Debian 64-bit).
	GuestOS string
	OSID    int
	// Firmware is "efi" or "bios".
	Firmware string
	// Network is the name of the logical network the NIC connects to; the
	// importer maps it to a real port group.
	Network string

	// Disk is the single VMDK of the appliance.
	Disk Disk
	// Properties are the ProductSection properties, in display order.
	Properties []Property
}

// Disk describes the VMDK file in the OVA.
type Disk struct {
	// File is the name of the VMDK inside the OVA (no directories).
	File string
	// FileSize is the VMDK's size in bytes: the ovf:size vSphere checks.
	FileSize int64
	// Capacity is the virtual disk size in bytes.
	Capacity int64
	// PopulatedSize, if set, is the bytes of data in the disk (a hint for
	// thin provisioning).
	PopulatedSize int64
}

// Property is one ProductSection property. All are strings; empty means
// "not set".
type Property struct {
	Key         string
	Category    string
	Label       string
	Description string
	Password    bool
	// Qualifiers is the ovf:qualifiers attribute, e.g. "MaxLen(64)".
	Qualifiers string
}

// DefaultConfig returns the appliance VM with every setting but the disk.
func DefaultConfig() *Config {
	return &Config{
		Name:            "vaultpam-connector",
		Product:         "VaultPAM Connector",
		Vendor:          "VaultPAM",
		Version:         "0.0.0",
		FullVersion:     "0.0.0",
		CPUs:            2,
		MemoryMiB:       2048,
		HardwareVersion: "vmx-17",
		GuestOS:         "debian11_64Guest",
		OSID:            96,
		Firmware:        "efi",
		Network:         "VM Network",
		Properties:      DefaultProperties(),
		Annotation: "VaultPAM Connector appliance. On first power-on the VM console asks for " +
			"the enrolment token and network settings, or takes them from these vApp properties.",
	}
}

// DefaultProperties returns the first-boot settings the console reads from
// the OVF environment. The keys are a contract with firstboot.
func DefaultProperties() []Property {
	return []Property{
		{Key: "vaultpam.token", Category: "Enrolment", Label: "Enrolment token", Password: true,
			Description: "Single-use token from the dashboard (Connectors → Add Connector), e.g. ABCDE-FGHJK-MNPQR-STVW0. Leave empty to type it on the VM console."},
		{Key: "vaultpam.control_plane_url", Category: "Enrolment", Label: "Control plane URL",
			Description: "https://HOST:PORT of the VaultPAM control plane."},
		{Key: "vaultpam.connector_name", Category: "Enrolment", Label: "Connector name",
			Description: "Name shown in the dashboard, e.g. dc1-connector-1."},
		{Key: "vaultpam.hostname", Category: "Network", Label: "Hostname",
			Description: "Host name of the appliance. Empty: derived from the connector name."},
		{Key: "vaultpam.ip", Category: "Network", Label: "IP address with prefix",
			Description: "Static address in CIDR form, e.g. 192.0.2.10/24. Empty: DHCP."},
		{Key: "vaultpam.gateway", Category: "Network", Label: "Default gateway",
			Description: "Default gateway for a static address, e.g. 192.0.2.1."},
		{Key: "vaultpam.dns", Category: "Network", Label: "DNS servers",
			Description: "Comma-separated DNS server addresses. Empty: from DHCP."},
		{Key: "vaultpam.ntp", Category: "Network", Label: "NTP servers",
			Description: "Comma-separated NTP servers. Empty: from DHCP or the Debian pool."},
		{Key: "vaultpam.proxy", Category: "Network", Label: "Outbound HTTP proxy",
			Description: "http://host:port of an HTTP CONNECT proxy for the tunnel. Empty: direct."},
		{Key: "vaultpam.ipv6", Category: "Network", Label: "IPv6",
			Description: "Empty or off: no IPv6. slaac, dhcpv6, or a static address in CIDR form, e.g. 2001:db8::10/64. For IPv6 only, set the IP address to none."},
		{Key: "vaultpam.ipv6_gateway", Category: "Network", Label: "IPv6 gateway",
			Description: "IPv6 default gateway for a static IPv6 address, e.g. 2001:db8::1 or fe80::1."},
		{Key: "vaultpam.vlan", Category: "Network", Label: "VLAN ID",
			Description: "802.1Q VLAN ID (1-4094) when the port group passes tagged frames (VGT). Empty: untagged."},
		{Key: "vaultpam.ca_cert", Category: "Enrolment", Label: "Trusted CA certificates",
			Description: "PEM, or base64 of PEM, of the CA that issued the control plane's certificate or of a TLS-inspecting proxy. Empty: the system's CAs."},
	}
}

var (
	propertyKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.]*$`)
	hwVersion   = regexp.MustCompile(`^vmx-[0-9]+$`)
)

// Validate reports every problem with c.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Name == "" {
		add("name: must not be empty")
	}
	if c.CPUs < 1 || c.CPUs > 128 {
		add("cpus %d: want 1 to 128", c.CPUs)
	}
	if c.MemoryMiB < 512 || c.MemoryMiB%4 != 0 {
		add("memory %d MiB: want at least 512 and a multiple of 4", c.MemoryMiB)
	}
	if !hwVersion.MatchString(c.HardwareVersion) {
		add("hardware version %q: want vmx-N", c.HardwareVersion)
	}
	if c.GuestOS == "" {
		add("guest OS: must not be empty")
	}
	if c.Firmware != "efi" && c.Firmware != "bios" {
		add("firmware %q: want efi or bios", c.Firmware)
	}
	if c.Network == "" {
		add("network: must not be empty")
	}
	if c.Disk.File == "" || strings.ContainsAny(c.Disk.File, "/\\") {
		add("disk file %q: want a plain file name", c.Disk.File)
	}
	if c.Disk.FileSize <= 0 {
		add("disk file size %d: want the VMDK's size in bytes", c.Disk.FileSize)
	}
	if c.Disk.Capacity <= 0 || c.Disk.Capacity%512 != 0 {
		add("disk capacity %d: want a positive multiple of 512 bytes", c.Disk.Capacity)
	}
	seen := map[string]bool{}
	for _, p := range c.Properties {
		if !propertyKey.MatchString(p.Key) {
			add("property key %q: want letters, digits, '_' and '.'", p.Key)
		}
		if seen[p.Key] {
			add("property key %q: duplicate", p.Key)
		}
		seen[p.Key] = true
	}
	return errors.Join(errs...)
}
