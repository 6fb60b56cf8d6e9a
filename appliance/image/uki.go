package image

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/vaultpam/appliance/rootfs/command"
)

// Section addresses of the UKI, as the systemd-boot-efi stub expects them
// (tried with Debian's linuxx64.efi.stub from systemd-boot-efi under OVMF).
var ukiSections = []struct{ name, vma string }{
	{".osrel", "0x20000"},
	{".cmdline", "0x30000"},
	{".linux", "0x2000000"},
	{".initrd", "0x3000000"},
}

// Cmdline is the kernel command line of a root's UKI. The root hash pins
// the root: changing one byte of the root needs a new UKI. The verity UUID
// (the UUID in the hash tree's superblock) lets the initramfs find the slot
// the root was written to, so the same UKI boots from slot A or B: an
// update bundle carries one UKI for whichever slot is not running.
func Cmdline(rootHash, verityUUID, extra string) string {
	args := []string{
		"root=/dev/mapper/vroot", "rootfstype=squashfs", "ro",
		"vaultpam.roothash=" + rootHash, "vaultpam.verity=" + verityUUID,
		// The last console is /dev/console: systemd status and the boot
		// report go to the serial line, which headless users and tests read.
		"console=tty1", "console=ttyS0,115200",
		"systemd.gpt_auto=0", "rd.systemd.gpt_auto=0",
		// Never a shell: initramfs-tools drops to one on failure unless
		// panic= is set; the kernel (verity corruption) and the initramfs
		// both show the error and reboot after a minute instead.
		"panic=60",
	}
	if extra != "" {
		args = append(args, extra)
	}
	return strings.Join(args, " ")
}

// buildUKI joins stub, kernel, initrd, os-release and command line into one
// EFI executable at out.
func buildUKI(ctx context.Context, o Options, kernel, initrd, osrel, cmdline, out string) error {
	cmdFile := out + ".cmdline"
	if err := os.WriteFile(cmdFile, []byte(cmdline+"\x00"), 0o644); err != nil {
		return err
	}
	defer os.Remove(cmdFile)
	files := map[string]string{".osrel": osrel, ".cmdline": cmdFile, ".linux": kernel, ".initrd": initrd}
	var args []string
	for _, s := range ukiSections {
		args = append(args, "--add-section", s.name+"="+files[s.name], "--change-section-vma", s.name+"="+s.vma)
	}
	args = append(args, o.StubPath, out)
	os.Remove(out)
	if _, err := command.Run(ctx, nil, nil, "objcopy", args...); err != nil {
		return fmt.Errorf("building the UKI: %w", err)
	}
	return stampPE(out, o.Rootfs.SourceDateEpoch)
}
