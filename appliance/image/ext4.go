package image

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/vaultpam/appliance/rootfs/command"
)

// buildExt4 makes an ext4 image of size bytes at out, filled from dir (may
// be empty), with UUID and hash seed derived from seed and every timestamp
// at SOURCE_DATE_EPOCH.
func buildExt4(ctx context.Context, o Options, out, label, dir string, size int64, owner string, seed string) error {
	os.Remove(out)
	epoch := strconv.FormatInt(o.Rootfs.SourceDateEpoch, 10)
	uuid := derivedUUID(seed, "ext4 "+label)
	ext := "root_owner=" + owner + ",hash_seed=" + derivedUUID(seed, "hash seed "+label)
	args := []string{"-q", "-F", "-t", "ext4", "-L", label, "-U", uuid, "-E", ext, "-m", "1"}
	if dir != "" {
		args = append(args, "-d", dir)
	}
	args = append(args, out, strconv.FormatInt(size/1024, 10)+"k")
	env := []string{"SOURCE_DATE_EPOCH=" + epoch, "E2FSPROGS_FAKE_TIME=" + epoch}
	if _, err := command.Run(ctx, env, nil, "mkfs.ext4", args...); err != nil {
		return fmt.Errorf("making the %s file system: %w", label, err)
	}
	return nil
}
