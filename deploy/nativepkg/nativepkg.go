// Package nativepkg builds the connector's native Linux packages, a DEB and
// an RPM, with nfpm: the static connector, the appliance's hardened systemd
// unit unchanged plus a drop-in with the package's paths
// (/etc/vaultpam/connector.yaml, /var/lib/vaultpam), the configuration as a
// conffile, a sysusers.d entry for the service user, and maintainer scripts
// that enable the service but never enrol it (the operator types the token
// with `vaultpam-connector enrol`). Builds are reproducible: every file
// time is Config.MTime.
package nativepkg

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

//go:embed files
var embedded embed.FS

// Paths inside the packages.
const (
	BinaryPath   = "/usr/bin/vaultpam-connector"
	UnitPath     = "/usr/lib/systemd/system/vaultpam-connector.service"
	DropInPath   = "/usr/lib/systemd/system/vaultpam-connector.service.d/10-package.conf"
	SysusersPath = "/usr/lib/sysusers.d/vaultpam-connector.conf"
	ConfigPath   = "/etc/vaultpam/connector.yaml"
	DataDir      = "/var/lib/vaultpam"
	DocPath      = "/usr/share/doc/vaultpam-connector/README.md"
	PackageName  = "vaultpam-connector"
)

// Config says what goes into the packages and where they are written.
type Config struct {
	// Binary is the static connector (CGO_ENABLED=0).
	Binary string
	// Unit is the connector's hardened systemd unit, the same file the
	// appliance ships.
	Unit string
	// Version is the package version (0.1.0); the RPM release is 1.
	Version string
	// MTime is every file's time in the packages (SOURCE_DATE_EPOCH).
	MTime time.Time
	// OutDir receives the packages; created if missing.
	OutDir string
	// Maintainer goes into the package metadata.
	Maintainer string
}

// DefaultConfig returns the metadata defaults; Binary, Unit, Version,
// MTime and OutDir must be set.
func DefaultConfig() Config {
	return Config{Maintainer: "VaultPAM <support@vaultpam.example>"}
}

// Validate returns every problem with c.
func (c Config) Validate() error {
	var errs []error
	for name, p := range map[string]string{"binary": c.Binary, "unit": c.Unit} {
		if p == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		} else if st, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		} else if !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("%s %s is not a regular file", name, p))
		}
	}
	if c.Version == "" {
		errs = append(errs, errors.New("version is not set"))
	}
	if c.MTime.IsZero() {
		errs = append(errs, errors.New("mtime is not set (SOURCE_DATE_EPOCH)"))
	}
	if c.OutDir == "" {
		errs = append(errs, errors.New("output directory is not set"))
	}
	return errors.Join(errs...)
}

// DebName and RPMName are the file names Build writes.
func DebName(version string) string { return PackageName + "_" + version + "_amd64.deb" }
func RPMName(version string) string { return PackageName + "-" + version + "-1.x86_64.rpm" }

// Build writes the DEB and the RPM into c.OutDir and returns their paths
// (deb first). A failed build leaves no partial package behind.
func Build(c Config) ([]string, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("native packages: %w", err)
	}
	if err := os.MkdirAll(c.OutDir, 0o755); err != nil {
		return nil, err
	}
	src, err := os.MkdirTemp("", "vaultpam-nativepkg-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(src)
	if err := writeEmbedded(src); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range []struct{ format, name string }{{"deb", DebName(c.Version)}, {"rpm", RPMName(c.Version)}} {
		p := filepath.Join(c.OutDir, f.name)
		if err := build(c, src, f.format, p); err != nil {
			for _, o := range out {
				os.Remove(o)
			}
			return nil, fmt.Errorf("building the %s: %w", f.format, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// info returns the nfpm description of the package; src holds the
// embedded files written out.
func info(c Config, src string) *nfpm.Info {
	in := func(name string) string { return filepath.Join(src, "files", name) }
	fi := func(mode os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: c.MTime}
	}
	return &nfpm.Info{
		Name:          PackageName,
		Arch:          "amd64",
		Platform:      "linux",
		Version:       c.Version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    c.Maintainer,
		Vendor:        "VaultPAM",
		Homepage:      "https://vaultpam.example",
		License:       "Proprietary",
		Description: "VaultPAM connector\n" +
			"The agent that lets VaultPAM broker privileged sessions to targets in this network\n" +
			"through an outbound TLS tunnel: no inbound firewall changes. Enrol it with\n" +
			"`vaultpam-connector enrol` after setting /etc/vaultpam/connector.yaml.",
		MTime: c.MTime,
		Overridables: nfpm.Overridables{
			Depends:    []string{"systemd"},
			Recommends: []string{"ca-certificates"},
			Umask:      0o022,
			Contents: files.Contents{
				// Directories only this package uses, so an RPM erase
				// removes them too (dpkg tracks them by itself).
				{Destination: "/etc/vaultpam", Type: files.TypeDir, FileInfo: fi(0o755)},
				{Destination: filepath.Dir(DropInPath), Type: files.TypeDir, FileInfo: fi(0o755)},
				{Destination: filepath.Dir(DocPath), Type: files.TypeDir, FileInfo: fi(0o755)},
				{Source: c.Binary, Destination: BinaryPath, FileInfo: fi(0o755)},
				{Source: c.Unit, Destination: UnitPath, FileInfo: fi(0o644)},
				{Source: in("10-package.conf"), Destination: DropInPath, FileInfo: fi(0o644)},
				{Source: in("sysusers.conf"), Destination: SysusersPath, FileInfo: fi(0o644)},
				{Source: in("connector.yaml"), Destination: ConfigPath, Type: files.TypeConfigNoReplace, FileInfo: fi(0o644)},
				{Source: in("README.md"), Destination: DocPath, FileInfo: fi(0o644)},
			},
			Scripts: nfpm.Scripts{
				PostInstall: in("postinstall.sh"),
				PreRemove:   in("preremove.sh"),
				PostRemove:  in("postremove.sh"),
			},
			RPM: nfpm.RPM{
				Group:     "System Environment/Daemons",
				Summary:   "VaultPAM connector",
				BuildHost: "vaultpam-build", // not os.Hostname(): reproducible
				Packager:  c.Maintainer,
			},
		},
	}
}

func build(c Config, src, format, path string) error {
	i := info(c, src)
	if format == "rpm" {
		i.Release = "1"
	}
	i = nfpm.WithDefaults(i)
	if err := nfpm.PrepareForPackager(i, format); err != nil {
		return err
	}
	pkgr, err := nfpm.Get(format)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := pkgr.Package(i, f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// writeEmbedded copies the embedded files (scripts, drop-in, template
// config) into dir, scripts executable.
func writeEmbedded(dir string) error {
	return fs.WalkDir(embedded, "files", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, p)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if filepath.Ext(p) == ".sh" {
			mode = 0o755
		}
		return os.WriteFile(dst, b, mode)
	})
}
