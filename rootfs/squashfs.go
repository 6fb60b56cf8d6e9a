package rootfs

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/vaultpam/appliance/rootfs/command"
)

// squash packs tree into a zstd squashfs image (level 6: a few MiB larger
// than the default 15, ten times faster to build). Every timestamp is
// SOURCE_DATE_EPOCH, directories are sorted by mksquashfs, xattrs are left
// out and -reproducible keeps the multi-threaded block order fixed, so the
// same tree gives the same bytes.
func squash(ctx context.Context, o Options, tree, out string) error {
	os.Remove(out)
	epoch := strconv.FormatInt(o.SourceDateEpoch, 10)
	o.logf("rootfs: packing the tree with mksquashfs")
	// mksquashfs refuses SOURCE_DATE_EPOCH in its environment together with
	// the explicit time options (make exports it), so it is removed here.
	_, err := command.Run(ctx, []string{"SOURCE_DATE_EPOCH"}, nil, "mksquashfs", tree, out,
		"-noappend", "-comp", "zstd", "-Xcompression-level", "6", "-b", "256K", "-no-xattrs",
		"-reproducible", "-all-time", epoch, "-mkfs-time", epoch,
		"-no-progress", "-quiet")
	if err != nil {
		return fmt.Errorf("making the root image: %w", err)
	}
	return nil
}
