// Package support builds the connector's support bundle: what a vendor's
// engineer needs to understand a connector in the field — its status, the
// recent journal of the appliance's units, the network state, the
// diagnostics, the image and verity state and the configuration — with
// every secret redacted (redact.Thorough), packed as a tar.gz with a manifest and
// encrypted with age to the vendor's public key, which the control plane
// announces in its hello_ack.
//
// The collector takes its sources injected (Options), so tests run it
// without journald, veritysetup or /config. It never reads the connector's
// identity (identity.json holds the private key): file reads go through a
// guard that refuses identity files and everything under Options.Forbidden.
package support

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/redact"
)

// DefaultUnits are the appliance's units whose journal goes into a bundle.
var DefaultUnits = []string{
	"vaultpam-connector.service", "vaultpam-console-tty1.service", "vaultpam-console-serial.service",
	"vaultpam-config.service", "vaultpam-data.service", "vaultpam-boot-report.service",
	"vaultpam-update.service", "vaultpam-update-gate.service",
	"systemd-networkd.service", "systemd-resolved.service", "systemd-timesyncd.service",
}

// Options are the collector's sources. Zero fields take the appliance's
// defaults (DefaultOptions).
type Options struct {
	// Status returns the connector's status JSON (GET /v1/status); Image
	// the updater's image status JSON (localapi.Image); Diagnostics the
	// text of the connectivity checks. A nil source or its error becomes
	// the part's error text.
	Status      func(context.Context) ([]byte, error)
	Image       func(context.Context) ([]byte, error)
	Diagnostics func(context.Context) ([]byte, error)

	// Run runs a command and returns its combined output (journalctl, ip,
	// veritysetup, dmsetup); nil means RunCommand.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// ReadFile and ReadDir read files; nil means the os package. Every
	// call goes through the guard (see Forbidden).
	ReadFile func(path string) ([]byte, error)
	ReadDir  func(path string) ([]fs.DirEntry, error)

	Units        []string // journal units; nil means DefaultUnits
	JournalLines int      // per unit; 0 means 2000
	ConfigFile   string   // /config/connector.yaml
	NetworkDir   string   // /config/network (systemd-networkd units)
	ResolvConf   string   // /etc/resolv.conf
	OSRelease    string   // /etc/os-release
	Cmdline      string   // /proc/cmdline (holds the verity root hash, no secret)
	// Forbidden are directories the collector must never read from: the
	// connector's data directory (PAM_AGENT_DATA_DIR) holds its private
	// key. identity.json files are refused wherever they are.
	Forbidden []string

	// ConnectorID, ConnectorName, Version and Hostname go into the manifest.
	ConnectorID, ConnectorName, Version, Hostname string
	Now                                           func() time.Time
}

// DefaultOptions returns the appliance's paths; the sources that need the
// running connector (Status, Image, Diagnostics) are left to the caller.
func DefaultOptions() Options {
	return Options{
		Units: DefaultUnits, JournalLines: 2000,
		ConfigFile: "/config/connector.yaml", NetworkDir: "/config/network",
		ResolvConf: "/etc/resolv.conf", OSRelease: "/etc/os-release", Cmdline: "/proc/cmdline",
		Forbidden: []string{"/data"},
	}
}

// ErrForbidden is returned by the guard for a path the collector must not
// read.
var ErrForbidden = errors.New("refused: the support bundle never reads the connector's identity or data directory")

// step is one source of parts.
type step struct {
	name    string
	collect func(context.Context) ([]Part, error)
}

// Collect gathers every part, redacts it and returns the bundle. A source
// that fails does not stop the others: its part holds the error and the
// manifest says so. Collect fails only when ctx ends.
func Collect(ctx context.Context, o Options) (*Bundle, error) {
	o = o.withDefaults()
	b := &Bundle{Manifest: Manifest{Format: FormatVersion, CreatedAt: o.Now().UTC().Truncate(time.Second),
		ConnectorID: o.ConnectorID, ConnectorName: o.ConnectorName, Version: o.Version, Hostname: o.Hostname}}
	for _, s := range o.steps() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		parts, err := s.collect(ctx)
		if err != nil && len(parts) == 0 {
			parts = []Part{{Name: s.name}}
		}
		for _, p := range parts {
			info := PartInfo{Name: p.Name}
			if err != nil {
				info.Error = err.Error()
				p.Data = append(p.Data, []byte("\n# "+s.name+": "+err.Error()+"\n")...)
			}
			p.Data, info.Redactions = redact.Thorough(p.Data)
			if info.Error != "" {
				e, _ := redact.Thorough([]byte(info.Error))
				info.Error = string(e)
			}
			info.Size, info.SHA256 = len(p.Data), sum(p.Data)
			b.Parts = append(b.Parts, p)
			b.Manifest.Parts = append(b.Manifest.Parts, info)
		}
	}
	return b, nil
}

// steps lists the sources in bundle order.
func (o Options) steps() []step {
	one := func(name string, f func(context.Context) ([]byte, error)) step {
		return step{name, func(ctx context.Context) ([]Part, error) {
			if f == nil {
				return nil, errors.New("not available here")
			}
			b, err := f(ctx)
			return []Part{{Name: name, Data: b}}, err
		}}
	}
	file := func(path string) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) { return o.read(path) }
	}
	run := func(name string, args ...string) func(context.Context) ([]byte, error) {
		return func(ctx context.Context) ([]byte, error) { return o.Run(ctx, name, args...) }
	}
	n := strconv.Itoa(o.JournalLines)
	steps := []step{
		one("status.json", o.Status),
		one("diagnostics.txt", o.Diagnostics),
		one("image/status.json", o.Image),
		one("image/os-release", file(o.OSRelease)),
		one("image/cmdline", file(o.Cmdline)),
		one("verity/veritysetup-status.txt", run("veritysetup", "status", "vroot")),
		one("verity/dmsetup-status.txt", run("dmsetup", "status")),
		one("config/connector.yaml", file(o.ConfigFile)),
		one("network/addresses.txt", run("ip", "address", "show")),
		one("network/routes.txt", run("ip", "route", "show", "table", "all")),
		one("network/routes6.txt", run("ip", "-6", "route", "show", "table", "all")),
		one("network/resolv.conf", file(o.ResolvConf)),
		{"network/units", o.networkUnits},
	}
	for _, u := range o.Units {
		steps = append(steps, one("journal/"+strings.TrimSuffix(u, ".service")+".log",
			run("journalctl", "--no-pager", "-o", "short-iso", "-n", n, "-u", u)))
	}
	return append(steps, one("journal/kernel.log", run("journalctl", "--no-pager", "-o", "short-iso", "-n", n, "-k")))
}

// networkUnits reads every systemd-networkd unit in NetworkDir.
func (o Options) networkUnits(context.Context) ([]Part, error) {
	ents, err := o.readDir(o.NetworkDir)
	if err != nil {
		return nil, err
	}
	var parts []Part
	var errs []error
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || !slices.Contains([]string{".network", ".netdev", ".link"}, ext) {
			continue
		}
		b, err := o.read(filepath.Join(o.NetworkDir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		parts = append(parts, Part{Name: "network/units/" + e.Name(), Data: b})
	}
	return parts, errors.Join(errs...)
}

// maxFile bounds one file read into a bundle.
const maxFile = 1 << 20

// read reads a file through the guard.
func (o Options) read(path string) ([]byte, error) {
	if err := o.guard(path); err != nil {
		return nil, err
	}
	b, err := o.ReadFile(path)
	if len(b) > maxFile {
		b = append(b[:maxFile:maxFile], []byte("\n# truncated at 1 MiB\n")...)
	}
	return b, err
}

func (o Options) readDir(path string) ([]fs.DirEntry, error) {
	if err := o.guard(path); err != nil {
		return nil, err
	}
	return o.ReadDir(path)
}

// guard refuses identity files and the Forbidden directories, by path
// and by where symbolic links lead.
func (o Options) guard(path string) error {
	check := func(p string) error {
		p = filepath.Clean(p)
		base := filepath.Base(p)
		if strings.HasPrefix(base, "identity.json") {
			return fmt.Errorf("%s: %w", p, ErrForbidden)
		}
		for _, f := range o.Forbidden {
			f = filepath.Clean(f)
			if f != "" && f != "." && (p == f || strings.HasPrefix(p, f+string(filepath.Separator))) {
				return fmt.Errorf("%s: %w", p, ErrForbidden)
			}
		}
		return nil
	}
	if err := check(path); err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		return check(real)
	}
	return nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Run == nil {
		o.Run = RunCommand
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.ReadDir == nil {
		o.ReadDir = os.ReadDir
	}
	if o.Units == nil {
		o.Units = d.Units
	}
	if o.JournalLines <= 0 {
		o.JournalLines = d.JournalLines
	}
	for _, f := range []struct {
		dst *string
		def string
	}{
		{&o.ConfigFile, d.ConfigFile}, {&o.NetworkDir, d.NetworkDir}, {&o.ResolvConf, d.ResolvConf},
		{&o.OSRelease, d.OSRelease}, {&o.Cmdline, d.Cmdline},
	} {
		if *f.dst == "" {
			*f.dst = f.def
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// maxOutput bounds one command's output in a bundle.
const maxOutput = 8 << 20

// RunCommand runs name with args (LC_ALL=C, 30 s at most) and returns
// its standard output and error, capped at 8 MiB. A missing command is an
// error that says so.
func RunCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("%s is not installed here", name)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER="}
	out, err := cmd.CombinedOutput()
	if len(out) > maxOutput {
		out = append(out[:maxOutput:maxOutput], []byte("\n# truncated at 8 MiB\n")...)
	}
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, nil
}
