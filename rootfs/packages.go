package rootfs

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vaultpam/appliance/rootfs/command"
)

// dpkgExcludes keep documentation, manuals and translations out of the
// image; copyright files stay (licences travel with the binaries).
var dpkgExcludes = []string{
	"path-exclude=/usr/share/man/*",
	"path-exclude=/usr/share/info/*",
	"path-exclude=/usr/share/lintian/*",
	"path-exclude=/usr/share/locale/*",
	"path-include=/usr/share/locale/locale.alias",
	"path-exclude=/usr/share/doc/*",
	"path-include=/usr/share/doc/*/copyright",
	"path-exclude=/usr/share/bug/*",
}

// packageStage returns the path of the package-stage tarball for o, building
// it with mmdebstrap unless the cache holds it already.
func packageStage(ctx context.Context, o Options) (tarball, key string, cached bool, err error) {
	pkgs, err := Packages()
	if err != nil {
		return "", "", false, err
	}
	key, err = stageKey(o, pkgs)
	if err != nil {
		return "", "", false, err
	}
	tarball = filepath.Join(o.CacheDir, "packages-"+key[:16]+".tar")
	if _, err := os.Stat(tarball); err == nil {
		return tarball, key, true, nil
	}

	// The initramfs additions go into the tree before the kernel's initrd is
	// (re)built in the customize hook.
	src := filepath.Join(o.WorkDir, "initramfs")
	if err := os.RemoveAll(src); err != nil {
		return "", "", false, err
	}
	if err := writeFS(files, "initramfs", src, func(string) os.FileMode { return 0o755 }); err != nil {
		return "", "", false, err
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", "", false, err
	}
	tmp := filepath.Join(o.CacheDir, "packages-"+key[:16]+".partial.tar")
	args := []string{
		"--mode=root", "--variant=essential", "--format=tar",
		`--aptopt=APT::Install-Recommends "false"`,
		"--include=" + strings.Join(pkgs, ","),
		"--setup-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" && cp " + shq(abs+"/conf.d/vaultpam.conf") + " \"$1/etc/initramfs-tools/conf.d/\"",
		"--customize-hook=cp -a " + shq(abs+"/hooks/.") + " \"$1/etc/initramfs-tools/hooks/\" && " +
			"cp -a " + shq(abs+"/scripts/local-top/.") + " \"$1/etc/initramfs-tools/scripts/local-top/\" && " +
			"chroot \"$1\" update-initramfs -u -k all",
	}
	for _, x := range dpkgExcludes {
		args = append(args, "--dpkgopt="+x)
	}
	args = append(args, o.Suite, tmp, o.Mirror)
	args = append(args, o.ExtraSources...)
	o.logf("rootfs: building the package stage with mmdebstrap (%d packages; this downloads from the Debian mirror)", len(pkgs))
	env := []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", o.SourceDateEpoch)}
	if _, err := command.Run(ctx, env, nil, "mmdebstrap", args...); err != nil {
		os.Remove(tmp)
		return "", "", false, err
	}
	if err := os.Rename(tmp, tarball); err != nil {
		return "", "", false, err
	}
	return tarball, key, false, nil
}

// shq quotes s for sh.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeFS copies the subtree root of fsys to dir, with file modes from mode
// (called with the path relative to root) and 0755 directories.
func writeFS(fsys fs.FS, root, dir string, mode func(rel string) os.FileMode) error {
	return fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if d.IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			return os.Chmod(dst, 0o755)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		os.Remove(dst) // replace symlinks and read-only files alike
		if err := os.WriteFile(dst, data, mode(rel)); err != nil {
			return err
		}
		return os.Chmod(dst, mode(rel))
	})
}
