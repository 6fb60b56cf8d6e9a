package update

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/update/release"
)

// bundleResult is what stepBundle leaves in "bundle".
type bundleResult struct{ *release.Bundle }

// stepBundle writes DIST/NAME-VERSION.update from the slot.
type stepBundle struct{}

func (s *stepBundle) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	slot := state.Get("slot").(release.Slot)
	out := filepath.Join(c.DistDir, release.BundleName(c.VMName, slot.Version))
	ui.Say(fmt.Sprintf("Writing the update bundle %s (root hash %s, verity tree %s)...", out, slot.RootHash, slot.VerityUUID))
	start := time.Now()
	b, err := release.WriteBundle(out, slot)
	if err != nil {
		return fail(state, err)
	}
	wrote(state, b.Path)
	ui.Say(fmt.Sprintf("Bundle %s: %d bytes (%.1f MiB) in %s, sha256 %s, manifest sha256 %s",
		b.Path, b.Size, float64(b.Size)/(1<<20), time.Since(start).Round(time.Millisecond), b.SHA256, b.ManifestSHA256))
	state.Put("bundle", &bundleResult{b})
	return multistep.ActionContinue
}

func (s *stepBundle) Cleanup(multistep.StateBag) {}
