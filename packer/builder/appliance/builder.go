package appliance

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/appliance/image"
)

// BuilderID identifies artifacts of this builder.
const BuilderID = "vaultpam.appliance"

// BuildFunc builds the disk; image.Build in production, a fake in tests.
type BuildFunc func(ctx context.Context, o image.Options) (*image.Result, error)

// Builder is the vaultpam-appliance builder.
type Builder struct {
	config Config
	// Build is called by the build step; nil means image.Build.
	Build  BuildFunc
	runner multistep.Runner
}

// New returns the builder for plugin registration.
func New() *Builder { return &Builder{} }

// ConfigSpec describes the HCL2 block.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare decodes and validates the configuration.
func (b *Builder) Prepare(raws ...any) ([]string, []string, error) {
	if err := b.config.decode(raws...); err != nil {
		return nil, nil, fmt.Errorf("vaultpam-appliance: %w", err)
	}
	return nil, nil, nil
}

// Run builds the disk and returns it as an Artifact.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	build := b.Build
	if build == nil {
		build = image.Build
	}
	state := new(multistep.BasicStateBag)
	state.Put("config", &b.config)
	state.Put("hook", hook)
	state.Put("ui", ui)
	steps := []multistep.Step{
		&stepBuildImage{build: build},
		&stepCheckDisk{},
	}
	b.runner = &multistep.BasicRunner{Steps: steps}
	b.runner.Run(ctx, state)
	if err, ok := state.GetOk("error"); ok {
		return nil, err.(error)
	}
	if _, ok := state.GetOk(multistep.StateCancelled); ok {
		return nil, fmt.Errorf("vaultpam-appliance: build cancelled")
	}
	res := state.Get("result").(*image.Result)
	return &Artifact{
		Disk:       res.Disk,
		Manifest:   res.Manifest,
		DpkgStatus: res.DpkgStatus,
		Image:      res.Image,
	}, nil
}
