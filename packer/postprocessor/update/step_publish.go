package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/vaultpam/appliance/appliance/image"
	"github.com/vaultpam/appliance/update/release"
	"github.com/vaultpam/appliance/update/trust"
)

// stepPublish lists the bundle in the update repository: targets,
// snapshot and timestamp re-signed with the release key. The repository
// must be the one whose root the image baked in.
type stepPublish struct{}

func (s *stepPublish) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	m := state.Get("image").(*image.Manifest)
	b := state.Get("bundle").(*bundleResult)
	repo := &trust.Repo{Dir: c.RepoDir, Signer: state.Get("signer").(signature.Signer)}
	if _, err := repo.RootBytes(); err != nil {
		return fail(state, fmt.Errorf("update repository %s: %w\nhint: vaultpam-sign update-init --dist %s creates it (make ova runs it before the image is built)", c.RepoDir, err, c.DistDir))
	}
	if err := repo.Init(); err != nil { // an existing root: checks it trusts the key
		return fail(state, err)
	}
	if m.UpdateRoot == "" {
		ui.Error("WARNING: the image carries no update root: appliances running it cannot verify any update")
	} else if n, err := bakedRootVersion(c.RepoDir, m.UpdateRoot); err != nil {
		return fail(state, err)
	} else {
		ui.Say(fmt.Sprintf("The image trusts root version %d of %s", n, c.RepoDir))
	}
	if err := release.Publish(repo, b.Bundle); err != nil {
		return fail(state, err)
	}
	ui.Say(fmt.Sprintf("Listed %s in %s (version %s, timestamp valid for %d days: re-sign it with vaultpam-sign update-refresh)",
		filepath.Base(b.Path), c.RepoDir, b.Manifest.Version, int(trust.TimestampLifetime.Hours()/24)))
	return multistep.ActionContinue
}

func (s *stepPublish) Cleanup(multistep.StateBag) {}

// bakedRootVersion returns which N.root.json of the repository the image
// baked in (by its sha256); an image that trusts another repository's
// root could verify none of this repository's updates.
func bakedRootVersion(repoDir, sum string) (int, error) {
	for n := 1; ; n++ {
		b, err := os.ReadFile(filepath.Join(repoDir, fmt.Sprintf("%d.root.json", n)))
		if err != nil {
			return 0, fmt.Errorf("the image's update root (sha256 %s) is none of the roots of %s: it was built against another update repository\nhint: build the image and the update with the same dist_dir", sum, repoDir)
		}
		h := sha256.Sum256(b)
		if hex.EncodeToString(h[:]) == sum {
			return n, nil
		}
	}
}
