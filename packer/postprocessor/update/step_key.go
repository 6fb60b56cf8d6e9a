package update

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/signing"
)

// stepKey loads the release key ("signer", "dev_key"): the configured key
// or the development key in dist_dir, the one make ova created before
// Packer ran.
type stepKey struct{}

func (s *stepKey) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	lookup, _ := state.Get("lookup_env").(func(string) (string, bool))
	sv, dev, err := signing.ReleaseKey(ctx, c.Key, signing.EnvPassword(lookup), c.DistDir, uiWriter{ui})
	if err != nil {
		return fail(state, fmt.Errorf("the release key: %w", err))
	}
	signer, err := signing.NewSigner(ctx, sv)
	if err != nil {
		return fail(state, err)
	}
	state.Put("signer", sv)
	state.Put("cosign_signer", signer)
	state.Put("dev_key", dev)
	return multistep.ActionContinue
}

func (s *stepKey) Cleanup(multistep.StateBag) {}

// uiWriter sends warnings to the Packer UI's error stream, one line each.
type uiWriter struct{ ui packersdk.Ui }

func (w uiWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		w.ui.Error(l)
	}
	return len(b), nil
}
