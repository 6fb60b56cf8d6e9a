package image

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/vaultpam/appliance/rootfs/command"
)

var rootHashRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})\s*$`)

// formatVerity writes the dm-verity hash tree of data into hashPath and
// returns the root hash and the UUID written into the tree's superblock.
// Salt and UUID come from the data's sha256, so the same data gives the same
// tree; the UUID is what the UKI's command line names (vaultpam.verity=) so
// the initramfs finds the slot the tree was written to.
func formatVerity(ctx context.Context, data, hashPath, dataSHA256 string) (rootHash, uuid string, err error) {
	os.Remove(hashPath)
	if err := os.WriteFile(hashPath, nil, 0o644); err != nil {
		return "", "", err
	}
	salt := dataSHA256 // 32 bytes of hex
	uuid = strings.ToLower(derivedUUID(dataSHA256, "verity"))
	out, err := command.Run(ctx, nil, nil, "veritysetup", "format",
		"--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096",
		"--salt="+salt, "--uuid="+uuid, data, hashPath)
	if err != nil {
		return "", "", fmt.Errorf("building the verity hash tree: %w", err)
	}
	m := rootHashRE.FindStringSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("veritysetup printed no root hash:\n%s", out)
	}
	return m[1], uuid, nil
}
