// Package rootfs builds the appliance's read-only root file system: a Debian
// bookworm tree made by mmdebstrap from packages.txt (cached by a hash of
// everything that goes into it), customised with the overlay in overlay/ and
// our binaries, and packed into a reproducible squashfs image.
//
// Build needs root (mmdebstrap --mode=root, chroot, tar with owners) and the
// Debian tools mmdebstrap and mksquashfs. It never mounts anything.
package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Binaries are the programs installed into /usr/bin when they exist in
// Options.BinDir.
var Binaries = []string{"vaultpam-connector", "vaultpam-console", "vaultpam-update"}

// Options says what to build and where. The zero value is not usable; start
// from DefaultOptions.
type Options struct {
	// BinDir holds our binaries (Binaries); missing ones are skipped with a
	// log line, so the image can be built before every program exists.
	BinDir string
	// CacheDir keeps package-stage tarballs across builds.
	CacheDir string
	// WorkDir is scratch space; Build replaces WorkDir/tree on every run.
	WorkDir string
	// Version is the appliance version written into os-release.
	Version string
	// SourceDateEpoch fixes every timestamp (seconds since the Unix epoch).
	SourceDateEpoch int64
	// Suite, Mirror and ExtraSources select the Debian packages. Point Mirror
	// at a snapshot to pin package versions.
	Suite        string
	Mirror       string
	ExtraSources []string
	// UpdateRoot is the TUF root of the release repository
	// (dist/update-repo/root.json), baked in at UpdateRootPath as the
	// updater's trust anchor. Empty: the image carries none (and refuses
	// every update).
	UpdateRoot string
	// Logf reports progress; nil discards it.
	Logf func(format string, args ...any)
}

// DefaultOptions returns options for a build below ./build, with
// SOURCE_DATE_EPOCH taken from the environment when set.
func DefaultOptions() Options {
	epoch := int64(1767225600) // 2026-01-01T00:00:00Z
	if v, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		epoch = v
	}
	return Options{
		BinDir:          "bin",
		CacheDir:        filepath.Join("build", "cache"),
		WorkDir:         filepath.Join("build", "work"),
		Version:         "0.0.0",
		SourceDateEpoch: epoch,
		Suite:           "bookworm",
		Mirror:          "http://deb.debian.org/debian",
		ExtraSources: []string{
			"deb http://deb.debian.org/debian bookworm-updates main",
			"deb http://deb.debian.org/debian-security bookworm-security main",
		},
	}
}

// Validate returns every problem with o.
func (o Options) Validate() error {
	var errs []error
	if o.CacheDir == "" {
		errs = append(errs, errors.New("cache dir is empty"))
	}
	if o.WorkDir == "" {
		errs = append(errs, errors.New("work dir is empty"))
	}
	if o.Version == "" {
		errs = append(errs, errors.New("version is empty"))
	}
	if o.SourceDateEpoch <= 0 {
		errs = append(errs, fmt.Errorf("source date epoch %d is not positive", o.SourceDateEpoch))
	}
	if o.Suite == "" || o.Mirror == "" {
		errs = append(errs, errors.New("suite and mirror must be set"))
	}
	return errors.Join(errs...)
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// Result describes a built root. Paths are inside Options.WorkDir.
type Result struct {
	RootImage  string // squashfs image, padded to 4 KiB
	RootSHA256 string // hex sha256 of RootImage
	RootSize   int64
	Kernel     string // vmlinuz taken out of the tree's /boot
	Initrd     string // initramfs with veritysetup and the verity/squashfs modules
	OSRelease  string // os-release of the image (for the UKI's .osrel)
	DpkgStatus string // copy of the tree's /var/lib/dpkg/status
	// PackagesKey names the package stage; PackagesCached says whether it
	// came from the cache.
	PackagesKey    string
	PackagesCached bool
	// Installed lists the Binaries found in BinDir and installed.
	Installed []string
	// Modules says which kernel modules the root kept (modules.txt).
	Modules ModuleStats
	// UpdateRootSHA256 is the sha256 of the baked-in update root; "" when
	// there is none.
	UpdateRootSHA256 string
}

// Build makes the root image. It is safe to call again with the same
// options; the package stage is reused when its key matches.
func Build(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("rootfs options: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("building the root file system needs root (mmdebstrap, chroot, file owners)")
	}
	for _, dir := range []string{o.CacheDir, o.WorkDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	tarball, key, cached, err := packageStage(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("package stage: %w", err)
	}
	o.logf("rootfs: package stage %s (cached=%v) ready after %s", key[:12], cached, time.Since(start).Round(time.Second))

	res := &Result{PackagesKey: key, PackagesCached: cached}
	tree := filepath.Join(o.WorkDir, "tree")
	if err := customise(ctx, o, tarball, tree, res); err != nil {
		return nil, fmt.Errorf("customising the tree: %w", err)
	}
	res.RootImage = filepath.Join(o.WorkDir, "root.squashfs")
	if err := squash(ctx, o, tree, res.RootImage); err != nil {
		return nil, err
	}
	sum, size, err := fileSHA256(res.RootImage)
	if err != nil {
		return nil, err
	}
	res.RootSHA256, res.RootSize = sum, size
	o.logf("rootfs: root image %d bytes sha256 %s after %s", size, sum, time.Since(start).Round(time.Second))
	return res, nil
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
