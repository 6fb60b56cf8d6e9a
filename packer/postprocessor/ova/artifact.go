package ova

import (
	"fmt"
	"os"

	"github.com/vaultpam/appliance/appliance/ova"
)

// Artifact is the OVA. State names: "version", "dpkg_status" and
// "root_hash" are passed on from the input artifact for the signing
// post-processor; "ova_sha256" is the OVA's digest.
type Artifact struct {
	Path       string
	Result     *ova.Result
	Version    string
	DpkgStatus string
	RootHash   string
}

// BuilderId identifies the post-processor.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files is the OVA.
func (a *Artifact) Files() []string { return []string{a.Path} }

// Id is the OVA's sha256.
func (a *Artifact) Id() string { return a.Result.SHA256 }

func (a *Artifact) String() string {
	return fmt.Sprintf("VaultPAM appliance OVA %s (%d MiB, sha256 %s)", a.Path, a.Result.Size>>20, a.Result.SHA256)
}

// State returns the values listed on Artifact; nil for anything else.
func (a *Artifact) State(name string) any {
	switch name {
	case "version":
		return a.Version
	case "dpkg_status":
		return a.DpkgStatus
	case "root_hash":
		return a.RootHash
	case "ova_sha256":
		return a.Result.SHA256
	}
	return nil
}

// Destroy removes the OVA.
func (a *Artifact) Destroy() error {
	if err := os.Remove(a.Path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing %s: %w", a.Path, err)
	}
	return nil
}
