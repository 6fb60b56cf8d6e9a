// Package sbom writes the software bill of materials of the appliance
// image: an SPDX 2.3 JSON document listing the Debian packages installed in
// the root filesystem (from a copy of its /var/lib/dpkg/status) and the
// VaultPAM binaries. Output is deterministic: packages are sorted, IDs are
// derived from names, and the creation time comes from SOURCE_DATE_EPOCH.
package sbom

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Package is one installed Debian package as dpkg records it.
type Package struct {
	Name          string
	Version       string
	Architecture  string
	Source        string // source package name; Name when the field is absent
	SourceVersion string // version of the source package; Version when not given
	Homepage      string
	Maintainer    string
}

// ParseDpkgStatus reads dpkg's status file format (RFC 822-style stanzas
// separated by blank lines, continuation lines start with a space) and
// returns the packages whose Status is "install ok installed", sorted by
// name and architecture. Stanzas for removed or half-installed packages are
// skipped.
func ParseDpkgStatus(r io.Reader) ([]Package, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	var pkgs []Package
	fields := map[string]string{}
	start, line := 0, 0
	flush := func() error {
		if len(fields) == 0 {
			return nil
		}
		defer clear(fields)
		if !strings.HasSuffix(fields["Status"], " installed") || !strings.HasPrefix(fields["Status"], "install ") {
			return nil
		}
		p := Package{
			Name:         fields["Package"],
			Version:      fields["Version"],
			Architecture: fields["Architecture"],
			Homepage:     fields["Homepage"],
			Maintainer:   fields["Maintainer"],
		}
		if p.Name == "" || p.Version == "" || p.Architecture == "" {
			return fmt.Errorf("dpkg status line %d: installed package stanza lacks Package, Version or Architecture", start)
		}
		p.Source, p.SourceVersion = p.Name, p.Version
		if src := fields["Source"]; src != "" {
			name, ver, hasVer := strings.Cut(src, " ")
			p.Source = name
			if hasVer {
				p.SourceVersion = strings.Trim(strings.TrimSpace(ver), "()")
			}
		}
		pkgs = append(pkgs, p)
		return nil
	}
	var last string
	for sc.Scan() {
		line++
		t := sc.Text()
		switch {
		case strings.TrimSpace(t) == "":
			if err := flush(); err != nil {
				return nil, err
			}
			last = ""
		case t[0] == ' ' || t[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("dpkg status line %d: continuation line without a field", line)
			}
			// Multi-line fields (Description, Conffiles) are not needed.
		default:
			k, v, ok := strings.Cut(t, ":")
			if !ok {
				return nil, fmt.Errorf("dpkg status line %d: %q is not \"Field: value\"", line, t)
			}
			if len(fields) == 0 {
				start = line
			}
			last = k
			fields[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading dpkg status: %w", err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("dpkg status lists no installed packages")
	}
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Architecture < pkgs[j].Architecture
	})
	return pkgs, nil
}

// DebianRelease guesses the Debian release (the purl "distro" qualifier,
// e.g. "debian-12") from the base-files version; "" when unknown.
func DebianRelease(pkgs []Package) string {
	for _, p := range pkgs {
		if p.Name != "base-files" {
			continue
		}
		v := p.Version
		if i := strings.IndexByte(v, ':'); i >= 0 {
			v = v[i+1:]
		}
		major := v
		if i := strings.IndexAny(v, ".+~-"); i >= 0 {
			major = v[:i]
		}
		if major != "" && strings.Trim(major, "0123456789") == "" {
			return "debian-" + major
		}
	}
	return ""
}
