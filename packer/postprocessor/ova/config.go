//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config

// Package ova is the Packer post-processor vaultpam-ova: it turns the raw
// disk from the vaultpam-appliance builder into
// OUTPUT_DIR/NAME-VERSION.ova (streamOptimized VMDK, OVF 1.0 descriptor,
// SHA256 manifest, and with publisher_key_file and publisher_cert_file
// VMware's .cert signing the manifest) that vSphere imports.
package ova

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// MiB is a mebibyte.
const MiB = 1 << 20

// Config is the post-processor "vaultpam-ova" block of a template.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// OutputDir receives the OVA. Default "dist".
	OutputDir string `mapstructure:"output_dir"`
	// VMName names the VM (OVF VirtualSystem) and prefixes the OVA file:
	// VM_NAME-VERSION.ova. Default "vaultpam-connector". (Packer reserves
	// "name" in post-processor blocks.)
	VMName string `mapstructure:"vm_name"`
	// Version goes into the file name and the ProductSection. Default: the
	// input artifact's "version" state.
	Version string `mapstructure:"version"`
	// CPUs and MemoryMiB are the VM's defaults (the operator can change
	// them at import). Default 2 and 2048.
	CPUs      int `mapstructure:"cpus"`
	MemoryMiB int `mapstructure:"memory_mib"`
	// DiskSizeMiB is the virtual disk's capacity. The raw image is padded
	// with unallocated space (it costs nothing in the OVA); the DATA
	// partition grows into it on first boot. 0 means the image's own size;
	// smaller than the image is an error.
	DiskSizeMiB int64 `mapstructure:"disk_size_mib"`
	// Network is the OVF network name the NIC connects to. Default
	// "VM Network".
	Network string `mapstructure:"network"`
	// CompressionLevel is the zlib level of the VMDK grains, 1 to 9.
	// Default 6.
	CompressionLevel int `mapstructure:"compression_level"`
	// SourceDateEpoch is the mtime of the OVA's members. Default
	// $SOURCE_DATE_EPOCH, else 2026-01-01.
	SourceDateEpoch int64 `mapstructure:"source_date_epoch"`
	// PublisherKeyFile and PublisherCertFile, set together, sign the OVA's
	// manifest as VMware's NAME.cert so vSphere shows the publisher: an
	// unencrypted PEM RSA private key (PKCS#1 or PKCS#8, at least 2048
	// bits) and its PEM code-signing certificate, leaf first, then the
	// intermediates. Both empty (the default): no .cert.
	PublisherKeyFile  string `mapstructure:"publisher_key_file"`
	PublisherCertFile string `mapstructure:"publisher_cert_file"`

	ctx interpolate.Context
}

func (c *Config) decode(raws ...any) error {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "vaultpam-ova",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return err
	}
	c.setDefaults()
	return c.Validate()
}

func (c *Config) setDefaults() {
	if c.OutputDir == "" {
		c.OutputDir = "dist"
	}
	if c.VMName == "" {
		c.VMName = "vaultpam-connector"
	}
	if c.CPUs == 0 {
		c.CPUs = 2
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = 2048
	}
	if c.Network == "" {
		c.Network = "VM Network"
	}
	if c.CompressionLevel == 0 {
		c.CompressionLevel = 6
	}
	if c.SourceDateEpoch == 0 {
		c.SourceDateEpoch = 1767225600
		if v, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
			c.SourceDateEpoch = v
		}
	}
}

// Validate reports every problem with c, each naming its setting. Zero
// values are checked after defaults, so 0 here means "set to 0" only where
// 0 has no default (cpus and memory_mib get theirs in setDefaults; negative
// values are errors).
func (c *Config) Validate() error {
	var errs []error
	if c.CPUs < 1 || c.CPUs > 128 {
		errs = append(errs, fmt.Errorf("cpus %d: want 1 to 128", c.CPUs))
	}
	if c.MemoryMiB < 512 || c.MemoryMiB%4 != 0 {
		errs = append(errs, fmt.Errorf("memory_mib %d: want at least 512 and a multiple of 4", c.MemoryMiB))
	}
	if c.DiskSizeMiB < 0 {
		errs = append(errs, fmt.Errorf("disk_size_mib %d: must not be negative (0 = the image's size)", c.DiskSizeMiB))
	}
	if c.CompressionLevel < 1 || c.CompressionLevel > 9 {
		errs = append(errs, fmt.Errorf("compression_level %d: want 1 to 9", c.CompressionLevel))
	}
	if c.VMName == "" {
		errs = append(errs, errors.New("vm_name: must not be empty"))
	}
	if (c.PublisherKeyFile == "") != (c.PublisherCertFile == "") {
		set, unset := "publisher_key_file", "publisher_cert_file"
		if c.PublisherKeyFile == "" {
			set, unset = unset, set
		}
		errs = append(errs, fmt.Errorf("%s is set but %s is empty: set both (the .cert needs the key and its certificate) or neither (no .cert)", set, unset))
	}
	return errors.Join(errs...)
}
