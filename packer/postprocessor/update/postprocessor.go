package update

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// BuilderID identifies artifacts of this post-processor.
const BuilderID = "vaultpam.update"

// PostProcessor is the vaultpam-update post-processor.
type PostProcessor struct {
	config Config
	// LookupEnv reads COSIGN_PASSWORD; os.LookupEnv when nil.
	LookupEnv func(string) (string, bool)
}

// New returns the post-processor for plugin registration.
func New() *PostProcessor { return &PostProcessor{} }

var _ packersdk.PostProcessor = (*PostProcessor)(nil)

// ConfigSpec describes the HCL2 block.
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure decodes and validates the configuration.
func (p *PostProcessor) Configure(raws ...any) error {
	p.config = Config{}
	if err := p.config.decode(raws...); err != nil {
		return fmt.Errorf("vaultpam-update: %w", err)
	}
	return nil
}

// inputState names the input artifact's state passed on to the next
// post-processor.
var inputState = []string{"version", "dpkg_status", "root_hash", "image_json", "disk"}

// PostProcess publishes the input image as an update, step by step: the
// release key, the bundle, its signature, its entry in the update
// repository, the ISO. It keeps the input artifact (the raw disk is the
// OVA's source and the next build's cache).
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	state := new(multistep.BasicStateBag)
	state.Put("config", &p.config)
	state.Put("ui", ui)
	state.Put("input", in)
	state.Put("lookup_env", p.LookupEnv)
	steps := []multistep.Step{
		&stepImage{},
		&stepKey{},
		&stepBundle{},
		&stepSign{},
		&stepPublish{},
		&stepISO{},
	}
	(&multistep.BasicRunner{Steps: steps}).Run(ctx, state)
	if err, ok := state.GetOk("error"); ok {
		return nil, true, true, err.(error)
	}
	if _, ok := state.GetOk(multistep.StateCancelled); ok {
		return nil, true, true, fmt.Errorf("vaultpam-update: cancelled")
	}
	a := &Artifact{RepoDir: p.config.RepoDir, In: map[string]any{}}
	a.Bundle = state.Get("bundle").(*bundleResult).Bundle
	a.ISO = state.Get("iso").(string)
	a.Written = state.Get("written").([]string)
	for _, k := range inputState {
		if v := in.State(k); v != nil {
			a.In[k] = v
		}
	}
	return a, true, true, nil
}

// fail records err (prefixed with the post-processor's name) and halts.
func fail(state multistep.StateBag, err error) multistep.StepAction {
	err = fmt.Errorf("vaultpam-update: %w", err)
	state.Put("error", err)
	state.Get("ui").(packersdk.Ui).Error(err.Error())
	return multistep.ActionHalt
}

// wrote adds files to the list of what this run wrote.
func wrote(state multistep.StateBag, files ...string) {
	w, _ := state.GetOk("written")
	list, _ := w.([]string)
	state.Put("written", append(list, files...))
}
