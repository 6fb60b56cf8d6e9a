package appliance

import (
	"fmt"
	"os"

	"github.com/vaultpam/appliance/appliance/image"
)

// Artifact is the built raw disk. Its state names (for post-processors):
//
//	"disk"        string  path of disk.raw
//	"disk_size"   int64   its size in bytes
//	"image_json"  string  path of image.json
//	"dpkg_status" string  path of the root's dpkg status (for the SBOM)
//	"version"     string  appliance version
//	"root_hash"   string  dm-verity root hash of slot A
//	"verity_uuid" string  UUID of slot A's verity superblock (the UKI's vaultpam.verity=)
type Artifact struct {
	Disk, Manifest, DpkgStatus string
	Image                      image.Manifest
}

// BuilderId identifies the builder.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files lists the raw disk only: image.json and dpkg-status are build
// metadata that stay in the build directory.
func (a *Artifact) Files() []string { return []string{a.Disk} }

// Id is the verity root hash, which names the root file system's content.
func (a *Artifact) Id() string { return a.Image.RootHash }

func (a *Artifact) String() string {
	return fmt.Sprintf("VaultPAM appliance disk %s (version %s, %d MiB, root hash %s)",
		a.Disk, a.Image.Version, a.Image.DiskSize>>20, a.Image.RootHash)
}

// State returns the values listed on Artifact; nil for anything else.
func (a *Artifact) State(name string) any {
	switch name {
	case "disk":
		return a.Disk
	case "disk_size":
		return a.Image.DiskSize
	case "image_json":
		return a.Manifest
	case "dpkg_status":
		return a.DpkgStatus
	case "version":
		return a.Image.Version
	case "root_hash":
		return a.Image.RootHash
	case "verity_uuid":
		return a.Image.VerityUUID
	}
	return nil
}

// Destroy removes the raw disk (Packer calls it when no post-processor
// keeps the input artifact).
func (a *Artifact) Destroy() error {
	if err := os.Remove(a.Disk); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing %s: %w", a.Disk, err)
	}
	return nil
}
