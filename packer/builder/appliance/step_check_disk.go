package appliance

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/appliance/image"
)

// stepCheckDisk makes sure what the build step reports is on disk: the raw
// disk has the size the manifest says, and the manifest has a version and a
// root hash, which later post-processors put into the OVA and signatures.
type stepCheckDisk struct{}

func (s *stepCheckDisk) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	res := state.Get("result").(*image.Result)
	fail := func(err error) multistep.StepAction {
		err = fmt.Errorf("vaultpam-appliance: %w", err)
		state.Put("error", err)
		ui.Error(err.Error())
		return multistep.ActionHalt
	}
	fi, err := os.Stat(res.Disk)
	if err != nil {
		return fail(fmt.Errorf("checking the disk: %w", err))
	}
	if fi.Size() != res.Image.DiskSize {
		return fail(fmt.Errorf("disk %s is %d bytes, image.json says %d", res.Disk, fi.Size(), res.Image.DiskSize))
	}
	if fi.Size()%512 != 0 {
		return fail(fmt.Errorf("disk %s is %d bytes, not whole sectors", res.Disk, fi.Size()))
	}
	if res.Image.Version == "" || res.Image.RootHash == "" {
		return fail(fmt.Errorf("image manifest %s lacks the version or the root hash", res.Manifest))
	}
	return multistep.ActionContinue
}

func (s *stepCheckDisk) Cleanup(multistep.StateBag) {}
