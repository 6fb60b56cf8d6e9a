//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config

// Package update is the Packer post-processor vaultpam-update: from the
// image the vaultpam-appliance builder made it writes the update bundle
// DIST/NAME-VERSION.update (slot A's root, verity tree and UKI with a
// manifest), signs it (.sig and .sigstore.json, the release key), lists it
// in the update repository DIST/update-repo (TUF targets, snapshot and
// timestamp re-signed) and writes the update ISO
// DIST/NAME-VERSION-update.iso for air-gapped appliances. vaultpam-cosign
// after it signs the ISO and lists everything in SHA256SUMS. See
// update/README.md.
package update

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/vaultpam/appliance/signing"
	"github.com/vaultpam/appliance/update/version"
)

// Config is the post-processor "vaultpam-update" block of a template. It
// never holds a password: an encrypted key's password comes from
// COSIGN_PASSWORD.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Key is the release key, the same as vaultpam-cosign's: a cosign
	// private key file or a KMS reference. It signs the bundle and the
	// update repository. Empty: the development key pair in dist_dir.
	Key string `mapstructure:"key"`
	// DistDir receives the bundle, its signature and the ISO. Default
	// "dist".
	DistDir string `mapstructure:"dist_dir"`
	// RepoDir is the update repository. Default DIST_DIR/update-repo. It
	// must exist (vaultpam-sign update-init, which make ova runs before
	// Packer, so the image can bake its root in).
	RepoDir string `mapstructure:"repo_dir"`
	// VMName prefixes the files: VM_NAME-VERSION.update. Default
	// "vaultpam-connector". (Packer reserves "name" in post-processor
	// blocks.)
	VMName string `mapstructure:"vm_name"`
	// Version of the image, x.y.z. Default: the input artifact's "version";
	// it must match the image's image.json.
	Version string `mapstructure:"version"`

	ctx interpolate.Context
}

func (c *Config) decode(raws ...any) error {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "vaultpam-update",
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
	if c.DistDir == "" {
		c.DistDir = "dist"
	}
	if c.RepoDir == "" {
		c.RepoDir = filepath.Join(c.DistDir, "update-repo")
	}
	if c.VMName == "" {
		c.VMName = "vaultpam-connector"
	}
}

// Validate reports every problem with c, each naming its setting, offline.
func (c *Config) Validate() error {
	var errs []error
	if c.Version != "" {
		if _, err := version.Parse(c.Version); err != nil {
			errs = append(errs, fmt.Errorf("version: %w", err))
		}
	}
	if c.Key != "" && signing.IsKMSRef(c.Key) {
		if err := signing.CheckKMSRef(c.Key); err != nil {
			errs = append(errs, fmt.Errorf("key: %w", err))
		}
	}
	if c.DistDir == "" || c.RepoDir == "" || c.VMName == "" {
		errs = append(errs, errors.New("dist_dir, repo_dir and vm_name must not be empty"))
	}
	return errors.Join(errs...)
}
