package console

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Probes read the appliance facts the health screen shows besides the
// connector's status. Each may be slow or hang (a stuck filesystem, a
// stuck command), so the screen calls them in the background. Nil fields
// take the real implementations over Env.
type Probes struct {
	Data   func(ctx context.Context) string // DATA partition state and usage
	Image  func(ctx context.Context) string // image version and slot
	Verity func(ctx context.Context) string // dm-verity state of the root
	NTP    func(ctx context.Context) string // time synchronisation
	// DNS lists the DNS servers the resolver uses now, comma-separated;
	// "none" when it has none.
	DNS func(ctx context.Context) string
}

func (p *Probes) defaults(env *Env) {
	if p.Data == nil {
		p.Data = func(context.Context) string { return dataState(env.path("/data")) }
	}
	if p.Image == nil {
		p.Image = func(context.Context) string { return imageInfo(env.Root) }
	}
	if p.Verity == nil {
		p.Verity = func(ctx context.Context) string { return verityState(ctx, env) }
	}
	if p.DNS == nil {
		p.DNS = func(context.Context) string { return resolverServers(env.path("/run/systemd/resolve/resolv.conf")) }
	}
	if p.NTP == nil {
		p.NTP = func(ctx context.Context) string {
			out, err := env.Run.Output(ctx, "timedatectl", "show", "-p", "NTPSynchronized", "--value")
			switch strings.TrimSpace(string(out)) {
			case "yes":
				return "synchronized"
			case "no":
				return "not synchronized yet"
			}
			if err != nil {
				return "unknown (" + err.Error() + ")"
			}
			return "unknown"
		}
	}
}

// dataState says whether /data is a persistent filesystem and how full.
func dataState(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "not available: " + err.Error()
	}
	total := st.Blocks * uint64(st.Bsize)
	used := (st.Blocks - st.Bfree) * uint64(st.Bsize)
	pct := uint64(0)
	if total > 0 {
		pct = used * 100 / total
	}
	usage := fmt.Sprintf("%s of %s used (%d%%)", size(used), size(total), pct)
	switch st.Type {
	case unix.TMPFS_MAGIC, unix.RAMFS_MAGIC:
		return "tmpfs, NOT persistent; " + usage
	case unix.EXT4_SUPER_MAGIC:
		return "ext4, persistent; " + usage
	}
	return fmt.Sprintf("persistent (fs %#x); %s", st.Type, usage)
}

func size(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", b>>10)
}

// imageInfo reads the image version from /etc/os-release (the image build
// writes IMAGE_VERSION there) and the running slot from what the initramfs
// recorded when it opened it (/run/vaultpam-boot/slot; the UKI is the same
// for both slots), else from an older UKI's command line.
func imageInfo(root string) string {
	version := ""
	if b, err := os.ReadFile(filepath.Join(root, "etc/os-release")); err == nil {
		kv := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				kv[k] = strings.Trim(v, `"`)
			}
		}
		version = firstOf(kv["IMAGE_VERSION"], kv["VERSION_ID"], kv["PRETTY_NAME"])
	}
	slot := "unknown"
	if b, err := os.ReadFile(filepath.Join(root, "run/vaultpam-boot/slot")); err == nil {
		if s := strings.ToUpper(strings.TrimSpace(string(b))); s == "A" || s == "B" {
			slot = s
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "proc/cmdline")); err == nil && slot == "unknown" {
		c := string(b)
		for _, f := range strings.Fields(c) {
			if v, ok := strings.CutPrefix(f, "vaultpam.slot="); ok {
				slot = strings.ToUpper(v)
			}
		}
		if slot == "unknown" {
			switch {
			case strings.Contains(c, "VPAM-ROOT-A"):
				slot = "A"
			case strings.Contains(c, "VPAM-ROOT-B"):
				slot = "B"
			}
		}
	}
	return fmt.Sprintf("%s, slot %s", firstOf(version, "unknown version"), slot)
}

// verityState reads the root hash from the kernel command line and the
// device-mapper verity status (V verified so far, C corruption seen).
func verityState(ctx context.Context, env *Env) string {
	b, _ := os.ReadFile(env.path("/proc/cmdline"))
	hash := ""
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "roothash="); ok {
			hash = v
		}
		if v, ok := strings.CutPrefix(f, "vaultpam.roothash="); ok {
			hash = v
		}
	}
	if hash == "" {
		return "off (no root hash on the kernel command line)"
	}
	short := hash
	if len(short) > 12 {
		short = short[:12] + "..."
	}
	out, err := env.Run.Output(ctx, "dmsetup", "status", "--target", "verity")
	if err != nil {
		return "root hash " + short + ", status unknown"
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && f[3] == "verity" {
			switch f[4] {
			case "V":
				return "on, no corruption seen (root hash " + short + ")"
			case "C":
				return "CORRUPTION DETECTED (root hash " + short + ")"
			}
		}
	}
	return "root hash " + short + ", no verity device"
}

// resolverServers lists the nameservers in path, systemd-resolved's view
// of the upstream DNS servers (static, and those DHCP sent), in its order.
func resolverServers(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return "unknown (systemd-resolved is not running)"
		}
		return "unknown (" + err.Error() + ")"
	}
	var servers []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "nameserver" {
			servers = append(servers, f[1])
		}
	}
	if len(servers) == 0 {
		return "none"
	}
	return strings.Join(servers, ", ")
}
