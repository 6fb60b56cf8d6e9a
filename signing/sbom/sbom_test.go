package sbom

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func parseTestdata(t *testing.T) []Package {
	t.Helper()
	f, err := os.Open("testdata/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkgs, err := ParseDpkgStatus(f)
	if err != nil {
		t.Fatalf("ParseDpkgStatus: %v", err)
	}
	return pkgs
}

func TestParseDpkgStatus(t *testing.T) {
	got := parseTestdata(t)
	want := []Package{
		{Name: "base-files", Version: "12.4+deb12u11", Architecture: "amd64", Source: "base-files", SourceVersion: "12.4+deb12u11", Maintainer: "Santiago Vila <sanvila@debian.org>"},
		{Name: "libattr1", Version: "1:2.5.1-4", Architecture: "amd64", Source: "attr", SourceVersion: "1:2.5.1-4", Maintainer: "Guillem Jover <guillem@debian.org>"},
		{Name: "libstdc++6", Version: "12.2.0-14+deb12u1", Architecture: "amd64", Source: "gcc-12", SourceVersion: "12.2.0-14+deb12u1", Homepage: "http://gcc.gnu.org/", Maintainer: "Debian GCC Maintainers <debian-gcc@lists.debian.org>"},
		{Name: "systemd", Version: "252.33-1~deb12u1", Architecture: "amd64", Source: "systemd", SourceVersion: "252.33-1~deb12u1", Homepage: "https://www.freedesktop.org/wiki/Software/systemd", Maintainer: "Debian systemd Maintainers <pkg-systemd-maintainers@lists.alioth.debian.org>"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseDpkgStatus mismatch (-want +got):\n%s", diff)
	}
	if r := DebianRelease(got); r != "debian-12" {
		t.Errorf("DebianRelease = %q, want debian-12", r)
	}
}

func TestParseDpkgStatusErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         "",
		"only removed":  "Package: x\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1\n",
		"no version":    "Package: x\nStatus: install ok installed\nArchitecture: all\n",
		"garbage":       "this is not a dpkg status file\n",
		"orphan cont'd": " continuation\n",
	} {
		if _, err := ParseDpkgStatus(strings.NewReader(in)); err == nil {
			t.Errorf("ParseDpkgStatus(%s) = nil error, want one", name)
		}
	}
}

func TestDebPURL(t *testing.T) {
	for _, tc := range []struct {
		p    Package
		want string
	}{
		{Package{Name: "systemd", Version: "252.33-1~deb12u1", Architecture: "amd64", Source: "systemd"}, "pkg:deb/debian/systemd@252.33-1~deb12u1?arch=amd64&distro=debian-12"},
		{Package{Name: "libstdc++6", Version: "12.2.0-14+deb12u1", Architecture: "amd64", Source: "gcc-12"}, "pkg:deb/debian/libstdc++6@12.2.0-14+deb12u1?arch=amd64&distro=debian-12&upstream=gcc-12"},
		{Package{Name: "odd name/x", Version: "1.0#2", Architecture: "amd64"}, "pkg:deb/debian/odd%20name%2Fx@1.0%232?arch=amd64&distro=debian-12"},
		{Package{Name: "libattr1", Version: "1:2.5.1-4", Architecture: "amd64", Source: "attr"}, "pkg:deb/debian/libattr1@1:2.5.1-4?arch=amd64&distro=debian-12&upstream=attr"},
	} {
		if got := DebPURL(tc.p, "debian-12"); got != tc.want {
			t.Errorf("DebPURL(%s) = %s, want %s", tc.p.Name, got, tc.want)
		}
	}
}

func testConfig() Config {
	return Config{
		Name: "vaultpam-connector", Version: "0.1.0",
		Created: time.Unix(1767225600, 0), Tool: "vaultpam-cosign-0.1.0",
		Components: []Component{{Name: "github.com/vaultpam/appliance", Version: "v0.1.0", PURL: "pkg:golang/github.com/vaultpam/appliance@v0.1.0"}},
	}
}

func TestSPDXGolden(t *testing.T) {
	pkgs := parseTestdata(t)
	got, err := SPDX(pkgs, testConfig())
	if err != nil {
		t.Fatalf("SPDX: %v", err)
	}
	again, err := SPDX(parseTestdata(t), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, again) {
		t.Fatal("SPDX output differs between two runs on the same input")
	}
	golden := filepath.Join("testdata", "status.spdx.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("SPDX mismatch with %s (-want +got):\n%s", golden, diff)
	}
}

// TestSPDXShape checks what SPDX 2.3 consumers rely on, on the parsed JSON.
func TestSPDXShape(t *testing.T) {
	out, err := SPDX(parseTestdata(t), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if doc["spdxVersion"] != "SPDX-2.3" || doc["dataLicense"] != "CC0-1.0" || doc["SPDXID"] != "SPDXRef-DOCUMENT" {
		t.Errorf("header = %v %v %v", doc["spdxVersion"], doc["dataLicense"], doc["SPDXID"])
	}
	if c := doc["creationInfo"].(map[string]any)["created"]; c != "2026-01-01T00:00:00Z" {
		t.Errorf("created = %v, want 2026-01-01T00:00:00Z (SOURCE_DATE_EPOCH)", c)
	}
	pkgs := doc["packages"].([]any)
	if len(pkgs) != 6 { // image + component + 4 installed debs
		t.Fatalf("%d packages, want 6", len(pkgs))
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		id := p.(map[string]any)["SPDXID"].(string)
		if seen[id] || strings.Trim(strings.TrimPrefix(id, "SPDXRef-"), "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
			t.Errorf("SPDXID %q duplicated or has characters SPDX forbids", id)
		}
		seen[id] = true
	}
	rels := doc["relationships"].([]any)
	if len(rels) != 6 { // DESCRIBES + 5 CONTAINS
		t.Errorf("%d relationships, want 6", len(rels))
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{}.Validate()
	if err == nil {
		t.Fatal("Validate of zero Config = nil")
	}
	for _, want := range []string{"name", "version", "SOURCE_DATE_EPOCH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, want it to mention %s", err, want)
		}
	}
}

// TestSystemDpkgStatus parses this machine's dpkg database when there is
// one: a real file with hundreds of stanzas.
func TestSystemDpkgStatus(t *testing.T) {
	f, err := os.Open("/var/lib/dpkg/status")
	if err != nil {
		t.Skipf("no dpkg database on this machine: %v", err)
	}
	defer f.Close()
	pkgs, err := ParseDpkgStatus(f)
	if err != nil {
		t.Fatalf("ParseDpkgStatus(/var/lib/dpkg/status): %v", err)
	}
	if _, err := SPDX(pkgs, testConfig()); err != nil {
		t.Fatalf("SPDX: %v", err)
	}
}
