// Package image assembles the appliance's bootable raw disk: it builds the
// root file system (package rootfs), its dm-verity hash tree, a unified
// kernel image (UKI) carrying the root hash, the ESP with systemd-boot, the
// CONFIG and DATA file systems, and lays them out in a GPT (ARCHITECTURE.md, "The disk").
// Everything is derived from the content and SOURCE_DATE_EPOCH: no random
// UUIDs, no timestamps of the build machine. No loop devices, no mounts.
package image

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/vaultpam/appliance/rootfs"
	"github.com/vaultpam/appliance/update/version"
)

// MiB is a mebibyte.
const MiB = 1 << 20

// Options says what to build. Start from DefaultOptions.
type Options struct {
	// Rootfs configures the root file system build (binaries, cache, work
	// dir, version, SOURCE_DATE_EPOCH, Debian sources).
	Rootfs rootfs.Options
	// OutDir receives disk.raw, image.json and dpkg-status.
	OutDir string
	// Sizes in bytes, multiples of 1 MiB. RootSlotSize 0 means: the root
	// image plus half of it (at least 64 MiB) of headroom, rounded up to
	// 64 MiB; both slots get that size.
	ESPSize, RootSlotSize, ConfigSize, DataSize int64
	// StubPath and BootloaderPath are systemd-boot-efi's UKI stub and
	// systemd-boot itself.
	StubPath, BootloaderPath string
	// ExtraCmdline is appended to the UKI's kernel command line.
	ExtraCmdline string
	// Logf reports progress; nil discards it. It is also used for Rootfs
	// when that has none.
	Logf func(format string, args ...any)
}

// DefaultOptions builds from ./bin into ./build.
func DefaultOptions() Options {
	return Options{
		Rootfs:         rootfs.DefaultOptions(),
		OutDir:         "build",
		ESPSize:        256 * MiB,
		ConfigSize:     64 * MiB,
		DataSize:       32 * MiB,
		StubPath:       "/usr/lib/systemd/boot/efi/linuxx64.efi.stub",
		BootloaderPath: "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
	}
}

// Validate returns every problem with o.
func (o Options) Validate() error {
	var errs []error
	if err := o.Rootfs.Validate(); err != nil {
		errs = append(errs, err)
	}
	// systemd-boot picks the newest UKI by the os-release version, and the
	// updater compares versions the same way: plain x.y.z only.
	if _, err := version.Parse(o.Rootfs.Version); o.Rootfs.Version != "" && err != nil {
		errs = append(errs, err)
	}
	if o.OutDir == "" {
		errs = append(errs, errors.New("output dir is empty"))
	}
	for _, s := range []struct {
		name string
		v    int64
		min  int64
	}{{"ESP", o.ESPSize, 64 * MiB}, {"CONFIG", o.ConfigSize, 8 * MiB}, {"DATA", o.DataSize, 16 * MiB}, {"root slot", o.RootSlotSize, 0}} {
		if s.v%MiB != 0 || s.v < s.min {
			errs = append(errs, fmt.Errorf("%s size %d must be a multiple of 1 MiB and at least %d MiB", s.name, s.v, s.min/MiB))
		}
	}
	if o.StubPath == "" || o.BootloaderPath == "" {
		errs = append(errs, errors.New("stub and bootloader paths must be set (package systemd-boot-efi)"))
	}
	return errors.Join(errs...)
}

// Paths of the outputs inside OutDir.
func (o Options) diskPath() string     { return filepath.Join(o.OutDir, "disk.raw") }
func (o Options) manifestPath() string { return filepath.Join(o.OutDir, "image.json") }
func (o Options) statusPath() string   { return filepath.Join(o.OutDir, "dpkg-status") }
