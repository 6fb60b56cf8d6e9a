package update

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/appliance/image"
	"github.com/vaultpam/appliance/update/release"
)

// stepImage reads the input image's image.json and turns its slot into a
// release.Slot ("slot"); the version must be the one configured.
type stepImage struct{}

func (s *stepImage) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	in := state.Get("input").(packersdk.Artifact)
	path, _ := in.State("image_json").(string)
	if path == "" {
		return fail(state, fmt.Errorf("the input artifact has no image_json (files: %v)\nhint: put vaultpam-update right after the vaultpam-appliance builder", in.Files()))
	}
	m, err := image.ReadManifest(path)
	if err != nil {
		return fail(state, fmt.Errorf("reading the image manifest: %w", err))
	}
	want := c.Version
	if want == "" {
		want, _ = in.State("version").(string)
	}
	if want != "" && want != m.Version {
		return fail(state, fmt.Errorf("version %s is configured but %s holds an image of version %s", want, path, m.Version))
	}
	if m.Slot.Root == "" || m.VerityUUID == "" {
		return fail(state, fmt.Errorf("%s names no slot files or verity UUID: it was written by an older image builder; rebuild the image", path))
	}
	root, verity, uki := m.Slot.Paths(filepath.Dir(path))
	slot := release.Slot{Version: m.Version, RootHash: m.RootHash, VerityUUID: m.VerityUUID, SourceDateEpoch: m.SourceDateEpoch,
		Root: root, Verity: verity, UKI: uki}
	if err := slot.Validate(); err != nil {
		return fail(state, fmt.Errorf("the image's slot: %w", err))
	}
	state.Put("image", m)
	state.Put("image_json", path)
	state.Put("slot", slot)
	return multistep.ActionContinue
}

func (s *stepImage) Cleanup(multistep.StateBag) {}
