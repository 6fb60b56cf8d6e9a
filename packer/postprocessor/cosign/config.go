//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config

package cosign

import (
	"errors"
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/vaultpam/appliance/signing"
)

// Config is the vaultpam-cosign block of a Packer template. It never holds
// a password: an encrypted key's password comes from COSIGN_PASSWORD.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Key is the signing key: a cosign private key file (from `cosign
	// generate-key-pair`, encrypted with COSIGN_PASSWORD) or a KMS reference
	// (awskms://, gcpkms://, azurekms://, hashivault://). Empty: a
	// development key pair is made in dist_dir, with a warning.
	Key string `mapstructure:"key"`
	// DistDir receives the signatures, SHA256SUMS, SBOM and cosign.pub.
	// Default "dist".
	DistDir string `mapstructure:"dist_dir"`
	// SBOMSource is the image's copy of /var/lib/dpkg/status
	// (build/dpkg-status). Empty: the input artifact's "dpkg_status" state,
	// else no SBOM (with a warning).
	SBOMSource string `mapstructure:"sbom_source"`
	// Name of the image, used for the SBOM's file name
	// NAME-VERSION.spdx.json. Default "vaultpam-connector".
	Name string `mapstructure:"name"`
	// Version of the image. Empty: the input artifact's "version" state.
	Version string `mapstructure:"version"`

	ctx interpolate.Context
}

// DefaultConfig returns the defaults Configure starts from.
func DefaultConfig() Config {
	return Config{DistDir: "dist", Name: "vaultpam-connector"}
}

// Validate returns every problem in c, offline.
func (c *Config) Validate() error {
	var errs []error
	if c.DistDir == "" {
		errs = append(errs, errors.New("dist_dir must not be empty"))
	}
	if c.Name == "" {
		errs = append(errs, errors.New("name must not be empty"))
	}
	if c.Key != "" && signing.IsKMSRef(c.Key) {
		if err := signing.CheckKMSRef(c.Key); err != nil {
			errs = append(errs, fmt.Errorf("key: %w", err))
		}
	}
	return errors.Join(errs...)
}
