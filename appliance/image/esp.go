package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vaultpam/appliance/rootfs/command"
)

// buildESP makes the FAT32 ESP image: systemd-boot as the removable-media
// loader \EFI\BOOT\BOOTX64.EFI, the slot's UKI in \EFI\Linux (systemd-boot
// lists Type #2 entries from there), and a loader.conf with no menu delay
// and no command-line editor (the root hash must not be editable).
func buildESP(ctx context.Context, o Options, out string, size int64, uki, ukiName, seed string) error {
	epoch := o.Rootfs.SourceDateEpoch
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(epoch, 10), "MTOOLS_SKIP_CHECK=1"}
	os.Remove(out)
	volid := derivedUUID(seed, "esp")[:8]
	if _, err := command.Run(ctx, env, nil, "mkfs.vfat", "-F", "32", "-n", "VPAM-ESP", "-i", volid,
		"--invariant", "-C", out, strconv.FormatInt(size/1024, 10)); err != nil {
		return fmt.Errorf("formatting the ESP: %w", err)
	}
	dir := filepath.Dir(out)
	loaderConf := filepath.Join(dir, "loader.conf")
	conf := "timeout 0\ndefault vaultpam-*\neditor no\nauto-entries no\nauto-firmware no\nconsole-mode keep\n"
	if err := os.WriteFile(loaderConf, []byte(conf), 0o644); err != nil {
		return err
	}
	t := time.Unix(epoch, 0)
	// mcopy -m keeps these times; systemd-boot itself is only read.
	for _, f := range []string{loaderConf, uki} {
		if err := os.Chtimes(f, t, t); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"mmd", "-i", out, "::/EFI", "::/EFI/BOOT", "::/EFI/Linux", "::/loader"},
		{"mcopy", "-i", out, "-m", o.BootloaderPath, "::/EFI/BOOT/BOOTX64.EFI"},
		{"mcopy", "-i", out, "-m", uki, "::/EFI/Linux/" + ukiName},
		{"mcopy", "-i", out, "-m", loaderConf, "::/loader/loader.conf"},
	}
	for _, s := range steps {
		if _, err := command.Run(ctx, env, nil, s[0], s[1:]...); err != nil {
			return fmt.Errorf("filling the ESP: %w", err)
		}
	}
	return nil
}
