package rootfs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vaultpam/appliance/rootfs/command"
)

// links are the /etc entries that must vary per deployment or per boot on a
// read-only root: they point into /config (deployment-owned, VPAM-CONFIG)
// or /run.
var links = map[string]string{
	"etc/hostname":        "/config/hostname",
	"etc/systemd/network": "/config/network",
	"etc/resolv.conf":     "/run/systemd/resolve/stub-resolv.conf",
	"etc/systemd/timesyncd.conf.d/50-vaultpam.conf": "/config/timesyncd.conf",
}

// enabled units: target → units wanted by it.
var enabled = map[string][]string{
	"multi-user.target": {
		"vaultpam-connector.service", "vaultpam-console-tty1.service",
		"vaultpam-console-serial.service", "vaultpam-boot-report.service",
		"vaultpam-update.service",
		"systemd-networkd.service", "systemd-resolved.service",
	},
	"sockets.target":  {"systemd-networkd.socket", "vaultpam-console-helper.socket"},
	"local-fs.target": {"vaultpam-data.service"},
	"sysinit.target":  {"vaultpam-config.service", "systemd-timesyncd.service"},
}

// required units: target → units it requires. The update gate is
// required by boot-complete.target, which only counted boots (a trial of
// a new slot) pull in: systemd-bless-boot blesses the slot only after the
// gate passed.
var required = map[string][]string{
	"boot-complete.target": {"vaultpam-update-gate.service"},
}

// masked units: no login prompt or shell anywhere (the console program owns
// tty1 and ttyS0), and nothing that expects a writable /etc.
var masked = []string{
	"getty@.service", "serial-getty@.service", "autovt@.service",
	"console-getty.service", "container-getty@.service",
	"debug-shell.service", "rescue.service", "emergency.service",
	"systemd-firstboot.service", "e2scrub_all.timer", "e2scrub_reap.service",
	"dpkg-db-backup.timer", "fstrim.timer",
}

// customise unpacks the package stage into tree and turns it into the
// appliance root: boot files out, overlay and binaries in, links, users,
// unit enablement, os-release.
func customise(ctx context.Context, o Options, tarball, tree string, res *Result) error {
	if err := os.RemoveAll(tree); err != nil {
		return err
	}
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return err
	}
	if _, err := command.Run(ctx, nil, nil, "tar", "--numeric-owner", "-xpf", tarball, "-C", tree); err != nil {
		return fmt.Errorf("unpacking the package stage: %w", err)
	}
	if err := takeBoot(o, tree, res); err != nil {
		return err
	}
	if err := keepModules(ctx, o, tree, res); err != nil {
		return err
	}
	// Caches and logs of the package stage are not part of the image.
	for _, glob := range []string{"var/cache/apt/*", "var/lib/apt/lists/*", "var/log/*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "tmp/*"} {
		matches, _ := filepath.Glob(filepath.Join(tree, glob))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	for _, p := range []string{"var/lib/dbus/machine-id", "etc/hostname", "etc/resolv.conf", "vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"} {
		os.Remove(filepath.Join(tree, p))
	}
	// Empty machine-id: systemd generates one per boot on the read-only root;
	// vaultpam-config.service keeps it on /config.
	if err := os.WriteFile(filepath.Join(tree, "etc/machine-id"), nil, 0o444); err != nil {
		return err
	}
	if err := writeFS(files, "overlay", tree, overlayMode); err != nil {
		return fmt.Errorf("applying the overlay: %w", err)
	}
	for _, d := range []string{"config", "data", "efi"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			return err
		}
	}
	if err := makeLinks(tree); err != nil {
		return err
	}
	if err := installBinaries(o, tree, res); err != nil {
		return err
	}
	if err := installUpdateRoot(o, tree, res); err != nil {
		return err
	}
	env := []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", o.SourceDateEpoch)}
	if _, err := command.Run(ctx, env, nil, "chroot", tree, "systemd-sysusers"); err != nil {
		return fmt.Errorf("creating system users: %w", err)
	}
	for _, f := range []string{"passwd-", "group-", "shadow-", "gshadow-"} {
		os.Remove(filepath.Join(tree, "etc", f))
	}
	if err := writeOSRelease(o, tree); err != nil {
		return err
	}
	res.OSRelease = filepath.Join(o.WorkDir, "os-release")
	if err := copyFile(filepath.Join(tree, "usr/lib/os-release"), res.OSRelease); err != nil {
		return err
	}
	res.DpkgStatus = filepath.Join(o.WorkDir, "dpkg-status")
	return copyFile(filepath.Join(tree, "var/lib/dpkg/status"), res.DpkgStatus)
}

// overlayMode: programs under usr/libexec are executable, the rest is data.
func overlayMode(rel string) os.FileMode {
	if strings.HasPrefix(rel, "usr/libexec/") {
		return 0o755
	}
	return 0o644
}

// takeBoot moves the kernel and initrd out of /boot: they go into the UKI,
// and nothing on the running system needs them.
func takeBoot(o Options, tree string, res *Result) error {
	kernels, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	initrds, _ := filepath.Glob(filepath.Join(tree, "boot", "initrd.img-*"))
	if len(kernels) != 1 || len(initrds) != 1 {
		return fmt.Errorf("want one kernel and one initrd in /boot, found %d and %d", len(kernels), len(initrds))
	}
	res.Kernel = filepath.Join(o.WorkDir, "vmlinuz")
	res.Initrd = filepath.Join(o.WorkDir, "initrd.img")
	if err := copyFile(kernels[0], res.Kernel); err != nil {
		return err
	}
	if err := copyFile(initrds[0], res.Initrd); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(tree, "boot"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(tree, "boot", e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// keepModules deletes the kernel modules modules.txt does not keep and
// regenerates the depmod files with the tree's own depmod.
func keepModules(ctx context.Context, o Options, tree string, res *Result) error {
	allow, err := Modules()
	if err != nil {
		return err
	}
	depmod := func(ctx context.Context, version string) error {
		_, err := command.Run(ctx, nil, nil, "chroot", tree, "depmod", version)
		return err
	}
	st, err := pruneModules(ctx, tree, allow, depmod)
	if err != nil {
		return fmt.Errorf("pruning kernel modules: %w", err)
	}
	res.Modules = st
	o.logf("rootfs: kernel %s: kept %d modules (%.1f MiB), removed %d (%.1f MiB)", st.Version,
		st.Kept, float64(st.KeptBytes)/(1<<20), st.Removed, float64(st.AllBytes-st.KeptBytes)/(1<<20))
	return nil
}

func makeLinks(tree string) error {
	type link struct{ path, target string }
	var all []link
	for p, t := range links {
		all = append(all, link{p, t})
	}
	for target, units := range enabled {
		for _, u := range units {
			all = append(all, link{"etc/systemd/system/" + target + ".wants/" + u, "/usr/lib/systemd/system/" + u})
		}
	}
	for target, units := range required {
		for _, u := range units {
			all = append(all, link{"etc/systemd/system/" + target + ".requires/" + u, "/usr/lib/systemd/system/" + u})
		}
	}
	for _, u := range masked {
		all = append(all, link{"etc/systemd/system/" + u, "/dev/null"})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].path < all[j].path })
	for _, l := range all {
		dst := filepath.Join(tree, l.path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := os.Symlink(l.target, dst); err != nil {
			return err
		}
	}
	// Debian enables a login prompt on tty1; the console program owns tty1.
	return os.RemoveAll(filepath.Join(tree, "etc/systemd/system/getty.target.wants"))
}

// installBinaries installs each of Binaries found in BinDir into /usr/bin,
// with the systemd units that start it (NAME.service, NAME-*.service and
// NAME-*.socket in BinDir: `make build` puts them there from beside the
// program's source, e.g. connector/cmd/vaultpam-connector/vaultpam-connector.service).
func installBinaries(o Options, tree string, res *Result) error {
	for _, name := range Binaries {
		src := filepath.Join(o.BinDir, name)
		if _, err := os.Stat(src); err != nil {
			o.logf("rootfs: warning: %s not found in %s; the image will not have it", name, o.BinDir)
			continue
		}
		dst := filepath.Join(tree, "usr/bin", name)
		if err := copyFile(src, dst); err != nil {
			return err
		}
		if err := os.Chmod(dst, 0o755); err != nil {
			return err
		}
		res.Installed = append(res.Installed, name)
		units, _ := filepath.Glob(filepath.Join(o.BinDir, name+".service"))
		more, _ := filepath.Glob(filepath.Join(o.BinDir, name+"-*.service"))
		sockets, _ := filepath.Glob(filepath.Join(o.BinDir, name+"-*.socket"))
		units = append(append(units, more...), sockets...)
		if len(units) == 0 {
			return fmt.Errorf("no systemd unit for %s in %s (want %s.service or %s-*.service; make build copies them there)", name, o.BinDir, name, name)
		}
		for _, u := range units {
			if err := copyFile(u, filepath.Join(tree, "usr/lib/systemd/system", filepath.Base(u))); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeOSRelease(o Options, tree string) error {
	text := fmt.Sprintf(`PRETTY_NAME="VaultPAM Connector %[1]s"
NAME="VaultPAM Connector"
ID=vaultpam
ID_LIKE=debian
VERSION="%[1]s"
VERSION_ID="%[1]s"
VERSION_CODENAME=%[2]s
IMAGE_ID=vaultpam-connector
IMAGE_VERSION="%[1]s"
HOME_URL="https://vaultpam.example/"
`, o.Version, o.Suite)
	p := filepath.Join(tree, "usr/lib/os-release")
	os.Remove(p)
	return os.WriteFile(p, []byte(text), 0o644)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}
