package appliance

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/appliance/image"
)

// stepBuildImage runs the image build: rootfs (cached package stage),
// squashfs + dm-verity, UKI, GPT disk. It puts the *image.Result in
// "result".
type stepBuildImage struct {
	build BuildFunc
}

func (s *stepBuildImage) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)

	o := image.DefaultOptions()
	o.OutDir = c.OutputDir
	o.ExtraCmdline = c.ExtraCmdline
	o.Rootfs.BinDir = c.BinDir
	o.Rootfs.CacheDir = c.CacheDir
	o.Rootfs.WorkDir = c.WorkDir
	o.Rootfs.Version = c.Version
	o.Rootfs.SourceDateEpoch = c.SourceDateEpoch
	o.Rootfs.Suite = c.DebianSuite
	if c.DebianMirror != o.Rootfs.Mirror {
		// The default extra sources name the default mirror's suite; a
		// custom mirror or suite brings its own.
		o.Rootfs.ExtraSources = nil
	}
	if c.DebianSuite != "bookworm" {
		o.Rootfs.ExtraSources = nil
	}
	o.Rootfs.Mirror = c.DebianMirror
	o.Rootfs.UpdateRoot = c.UpdateRoot
	if c.UpdateRoot == "" {
		ui.Error("WARNING: update_root is not set: the image will carry no update root and refuse every update")
	} else if _, err := os.Stat(c.UpdateRoot); err != nil {
		// Checked before the minutes of the root file system build.
		err = fmt.Errorf("vaultpam-appliance: update_root: %w\nhint: run `vaultpam-sign update-init --dist DIST` first (make ova does)", err)
		state.Put("error", err)
		ui.Error(err.Error())
		return multistep.ActionHalt
	}
	o.Logf = func(format string, args ...any) { ui.Say(fmt.Sprintf(format, args...)) }

	ui.Say(fmt.Sprintf("Building the appliance disk %s (Debian %s, version %s)...", c.OutputDir+"/disk.raw", c.DebianSuite, c.Version))
	res, err := s.build(ctx, o)
	if err != nil {
		err = fmt.Errorf("vaultpam-appliance: building the disk: %w", err)
		state.Put("error", err)
		ui.Error(err.Error())
		return multistep.ActionHalt
	}
	ui.Say(fmt.Sprintf("Disk built in %s: %s (%d MiB), verity root hash %s",
		res.Duration.Round(1e9), res.Disk, res.Image.DiskSize>>20, res.Image.RootHash))
	state.Put("result", res)
	return multistep.ActionContinue
}

func (s *stepBuildImage) Cleanup(multistep.StateBag) {}
