package update

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/signing"
	"github.com/vaultpam/appliance/update/release"
)

// stepISO writes DIST/NAME-VERSION-update.iso: the repository's metadata,
// the bundle and its signature (layout: update/README.md).
type stepISO struct{}

func (s *stepISO) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	b := state.Get("bundle").(*bundleResult)
	out := filepath.Join(c.DistDir, release.ISOName(c.VMName, b.Manifest.Version))
	if err := release.WriteISO(ctx, release.ISO{Out: out, RepoDir: c.RepoDir, Bundle: b.Path, Signature: b.Path + signing.SigSuffix}); err != nil {
		return fail(state, err)
	}
	wrote(state, out)
	st, err := os.Stat(out)
	if err != nil {
		return fail(state, err)
	}
	ui.Say(fmt.Sprintf("Update ISO %s: %d bytes (%.1f MiB), volume %s", out, st.Size(), float64(st.Size())/(1<<20), release.ISOLabel))
	state.Put("iso", out)
	return multistep.ActionContinue
}

func (s *stepISO) Cleanup(multistep.StateBag) {}
