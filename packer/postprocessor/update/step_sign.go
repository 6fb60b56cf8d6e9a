package update

import (
	"context"
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/signing"
)

// stepSign signs the bundle with the release key: BUNDLE.sig and
// BUNDLE.sigstore.json, as vaultpam-cosign signs the OVA (streaming
// digest). It is signed here, not by vaultpam-cosign, because the ISO
// carries the signature; vaultpam-cosign lists the bundle in SHA256SUMS.
type stepSign struct{}

func (s *stepSign) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	b := state.Get("bundle").(*bundleResult)
	signer := state.Get("cosign_signer").(*signing.Signer)
	sig, err := signer.SignFile(ctx, b.Path)
	if err != nil {
		return fail(state, fmt.Errorf("signing the bundle: %w", err))
	}
	if sig.Digest.Hex() != b.SHA256 {
		return fail(state, fmt.Errorf("%s changed while it was signed (sha256 %s, written as %s)", b.Path, sig.Digest.Hex(), b.SHA256))
	}
	if err := signing.WriteSignatureFiles(b.Path, sig); err != nil {
		return fail(state, err)
	}
	wrote(state, b.Path+signing.SigSuffix, b.Path+signing.BundleSuffix)
	ui.Say("Signed " + b.Path + signing.SigSuffix)
	return multistep.ActionContinue
}

func (s *stepSign) Cleanup(multistep.StateBag) {}
