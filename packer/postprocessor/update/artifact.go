package update

import (
	"errors"
	"fmt"
	"os"

	"github.com/vaultpam/appliance/update/release"
)

// Artifact is a published update: the bundle (with its signature files)
// and the ISO. State names:
//
//	"version", "dpkg_status", "root_hash", "image_json", "disk"
//	                 passed on from the input artifact (vaultpam-cosign
//	                 reads version and dpkg_status for the SBOM)
//	"bundle"         string  path of the .update
//	"bundle_sha256"  string  its sha256 (as in the update repository)
//	"iso"            string  path of the update ISO
//	"repo_dir"       string  the update repository
type Artifact struct {
	Bundle  *release.Bundle
	ISO     string
	RepoDir string
	// Written lists every file this post-processor wrote (bundle, .sig,
	// .sigstore.json, ISO).
	Written []string
	// In is the input artifact's state.
	In map[string]any
}

// BuilderId identifies the post-processor.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files lists the bundle, its signature files and the ISO.
func (a *Artifact) Files() []string { return append([]string(nil), a.Written...) }

// Id is the bundle's sha256.
func (a *Artifact) Id() string { return a.Bundle.SHA256 }

func (a *Artifact) String() string {
	return fmt.Sprintf("VaultPAM update %s (%d MiB, sha256 %s), listed in %s; ISO %s",
		a.Bundle.Path, a.Bundle.Size>>20, a.Bundle.SHA256, a.RepoDir, a.ISO)
}

// State returns the values listed on Artifact; nil for anything else.
func (a *Artifact) State(name string) any {
	switch name {
	case "bundle":
		return a.Bundle.Path
	case "bundle_sha256":
		return a.Bundle.SHA256
	case "iso":
		return a.ISO
	case "repo_dir":
		return a.RepoDir
	}
	return a.In[name]
}

// Destroy removes the files written. The update repository keeps the
// bundle's entry: a repository only moves forward.
func (a *Artifact) Destroy() error {
	var errs []error
	for _, f := range a.Written {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
