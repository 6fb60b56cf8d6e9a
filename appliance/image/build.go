package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/vaultpam/appliance/rootfs"
)

// Result is what Build made.
type Result struct {
	Disk       string // OutDir/disk.raw
	Manifest   string // OutDir/image.json
	DpkgStatus string // OutDir/dpkg-status
	Image      Manifest
	Duration   time.Duration
}

// Slot file names in OutDir (Manifest.Slot).
var slotFiles = SlotFiles{Root: "root.squashfs", Verity: "root.verity", UKI: "uki.efi"}

// Build makes OutDir/disk.raw, OutDir/image.json, OutDir/dpkg-status and
// slot A's parts (OutDir/root.squashfs, root.verity, uki.efi: Manifest.Slot).
// It needs root and the Debian tools listed in appliance/README.md. Calls
// must not overlap for the same work or output directory.
func Build(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("image options: %w", err)
	}
	if o.Rootfs.Logf == nil {
		o.Rootfs.Logf = o.Logf
	}
	logf := func(format string, args ...any) {
		if o.Logf != nil {
			o.Logf(format, args...)
		}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	root, err := rootfs.Build(ctx, o.Rootfs)
	if err != nil {
		return nil, err
	}
	work := filepath.Join(o.Rootfs.WorkDir, "image")
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	seed := root.RootSHA256
	layout := planLayout(o, root.RootSize, seed)

	logf("image: dm-verity hash tree")
	verity := filepath.Join(work, "verity-a.img")
	rootHash, verityUUID, err := formatVerity(ctx, root.RootImage, verity, root.RootSHA256)
	if err != nil {
		return nil, err
	}

	logf("image: UKI and ESP")
	cmdline := Cmdline(rootHash, verityUUID, o.ExtraCmdline)
	ukiName := fmt.Sprintf("vaultpam-%s-A.efi", o.Rootfs.Version)
	uki := filepath.Join(work, ukiName)
	if err := buildUKI(ctx, o, root.Kernel, root.Initrd, root.OSRelease, cmdline, uki); err != nil {
		return nil, err
	}
	esp := filepath.Join(work, "esp.img")
	if err := buildESP(ctx, o, esp, layout.byLabel(LabelESP).Size, uki, ukiName, seed); err != nil {
		return nil, err
	}

	// Both start empty: vaultpam-config.service makes /config/network on
	// first boot. (mkfs.ext4 -d copies the build time into inode ctimes.)
	logf("image: CONFIG and DATA file systems")
	config := filepath.Join(work, "config.img")
	if err := buildExt4(ctx, o, config, LabelConfig, "", layout.byLabel(LabelConfig).Size, "0:0", seed); err != nil {
		return nil, err
	}
	data := filepath.Join(work, "data.img")
	if err := buildExt4(ctx, o, data, LabelData, "", layout.byLabel(LabelData).Size, "990:990", seed); err != nil {
		return nil, err
	}

	logf("image: writing %s", o.diskPath())
	tmpDisk := o.diskPath() + ".partial"
	images := map[string]string{
		LabelESP: esp, LabelRootA: root.RootImage, LabelVerityA: verity,
		LabelConfig: config, LabelData: data,
	}
	if err := writeDisk(ctx, tmpDisk, layout, images); err != nil {
		os.Remove(tmpDisk)
		return nil, err
	}
	diskSum, err := sha256File(tmpDisk)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmpDisk, o.diskPath()); err != nil {
		return nil, err
	}
	if err := copyFile(root.DpkgStatus, o.statusPath()); err != nil {
		return nil, err
	}
	// The slot's parts stay beside the disk: an update bundle is made of
	// them (the work directory is scratch for the next build).
	slotRoot, slotVerity, slotUKI := slotFiles.Paths(o.OutDir)
	for _, mv := range [][2]string{{root.RootImage, slotRoot}, {verity, slotVerity}, {uki, slotUKI}} {
		if err := moveFile(mv[0], mv[1]); err != nil {
			return nil, fmt.Errorf("keeping slot A's parts: %w", err)
		}
	}
	m := Manifest{
		Version: o.Rootfs.Version, SourceDateEpoch: o.Rootfs.SourceDateEpoch,
		RootHash: rootHash, VerityUUID: verityUUID, RootSHA256: root.RootSHA256, RootSize: root.RootSize,
		Cmdline: cmdline, UKI: "/EFI/Linux/" + ukiName, DiskSHA256: diskSum,
		PackagesKey: root.PackagesKey, Binaries: root.Installed, UpdateRoot: root.UpdateRootSHA256,
		Slot: slotFiles, Layout: layout,
	}
	if m.Binaries == nil {
		m.Binaries = []string{}
	}
	if err := writeJSON(o.manifestPath(), m); err != nil {
		return nil, err
	}
	res := &Result{Disk: o.diskPath(), Manifest: o.manifestPath(), DpkgStatus: o.statusPath(), Image: m, Duration: time.Since(start)}
	logf("image: done in %s: root %d bytes sha256 %s, root hash %s", res.Duration.Round(time.Second), root.RootSize, root.RootSHA256, rootHash)
	return res, nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// moveFile renames src to dst, or copies it when they are on different
// file systems.
func moveFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	if err := copyFile(src, dst); err != nil {
		return err
	}
	return os.Remove(src)
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
