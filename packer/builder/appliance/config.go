//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config

// Package appliance is the Packer builder vaultpam-appliance: it builds the
// appliance's raw GPT disk (root file system, dm-verity, UKI, partitions)
// with appliance/image and hands it on as an Artifact whose state carries
// the version, the verity root hash and the image manifest.
package appliance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// Config is the source "vaultpam-appliance" block of a template.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Version of the appliance, written into os-release and image.json.
	Version string `mapstructure:"version" required:"true"`
	// BinDir holds vaultpam-connector and vaultpam-console. Default "bin".
	BinDir string `mapstructure:"bin_dir"`
	// OutputDir receives disk.raw, image.json and dpkg-status. Default "build".
	OutputDir string `mapstructure:"output_dir"`
	// CacheDir keeps the Debian package stage between builds. Default
	// OUTPUT_DIR/cache.
	CacheDir string `mapstructure:"cache_dir"`
	// WorkDir is scratch space. Default OUTPUT_DIR/work.
	WorkDir string `mapstructure:"work_dir"`
	// DebianSuite is the Debian release. Default "bookworm".
	DebianSuite string `mapstructure:"debian_suite"`
	// DebianMirror is the archive (or a snapshot, to pin package versions).
	// Default http://deb.debian.org/debian.
	DebianMirror string `mapstructure:"debian_mirror"`
	// SourceDateEpoch fixes every timestamp. Default $SOURCE_DATE_EPOCH,
	// else 2026-01-01.
	SourceDateEpoch int64 `mapstructure:"source_date_epoch"`
	// ExtraCmdline is appended to the kernel command line.
	ExtraCmdline string `mapstructure:"extra_cmdline"`
	// UpdateRoot is the TUF root of the release's update repository
	// (DIST/update-repo/root.json), baked into the image as the updater's
	// trust anchor. `make ova` creates it (vaultpam-sign update-init) before
	// Packer runs. Empty: the image carries none and refuses every update.
	UpdateRoot string `mapstructure:"update_root"`

	ctx interpolate.Context
}

// decode fills c from the template's raw configuration and applies
// defaults.
func (c *Config) decode(raws ...any) error {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "vaultpam-appliance",
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
	if c.BinDir == "" {
		c.BinDir = "bin"
	}
	if c.OutputDir == "" {
		c.OutputDir = "build"
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(c.OutputDir, "cache")
	}
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(c.OutputDir, "work")
	}
	if c.DebianSuite == "" {
		c.DebianSuite = "bookworm"
	}
	if c.DebianMirror == "" {
		c.DebianMirror = "http://deb.debian.org/debian"
	}
	if c.SourceDateEpoch == 0 {
		c.SourceDateEpoch = 1767225600
		if v, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
			c.SourceDateEpoch = v
		}
	}
}

// Validate reports every problem with c, each naming its setting.
func (c *Config) Validate() error {
	var errs []error
	if c.Version == "" {
		errs = append(errs, errors.New("version: must be set (e.g. 0.1.0)"))
	}
	if fi, err := os.Stat(c.BinDir); err != nil || !fi.IsDir() {
		errs = append(errs, fmt.Errorf("bin_dir %q: not a directory; run make build first", c.BinDir))
	}
	if c.SourceDateEpoch < 0 {
		errs = append(errs, fmt.Errorf("source_date_epoch %d: must not be negative", c.SourceDateEpoch))
	}
	return errors.Join(errs...)
}
