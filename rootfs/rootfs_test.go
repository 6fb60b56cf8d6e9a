package rootfs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseManifest(t *testing.T) {
	got, err := parseManifest("# c\nsystemd\n\n  udev # inline\n")
	if err != nil || strings.Join(got, ",") != "systemd,udev" {
		t.Errorf("parseManifest = %v, %v; want [systemd udev]", got, err)
	}
	for _, bad := range []string{"", "# only\n", "a b\n", "a\na\n"} {
		if _, err := parseManifest(bad); err == nil {
			t.Errorf("parseManifest(%q) = nil error, want one", bad)
		}
	}
}

// TestManifestContents pins what the image must and must not contain.
func TestManifestContents(t *testing.T) {
	pkgs, err := Packages()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, p := range pkgs {
		have[p] = true
	}
	for _, want := range []string{"systemd", "linux-image-amd64", "open-vm-tools", "ca-certificates", "systemd-timesyncd", "cryptsetup-bin", "e2fsprogs", "udev"} {
		if !have[want] {
			t.Errorf("packages.txt lacks %s", want)
		}
	}
	for _, never := range []string{"openssh-server", "dropbear", "sudo", "bash-completion", "linux-image-cloud-amd64"} {
		if have[never] {
			t.Errorf("packages.txt must not have %s", never)
		}
	}
}

func TestStageKey(t *testing.T) {
	o := DefaultOptions()
	pkgs := []string{"a", "b"}
	k1, err := stageKey(o, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	if k2, _ := stageKey(o, pkgs); k2 != k1 {
		t.Errorf("stageKey is not stable: %s then %s", k1, k2)
	}
	changed := []func(*Options, *[]string){
		func(o *Options, p *[]string) { *p = []string{"a", "c"} },
		func(o *Options, p *[]string) { o.Mirror = "http://snapshot.example/debian" },
		func(o *Options, p *[]string) { o.SourceDateEpoch++ },
		func(o *Options, p *[]string) { o.ExtraSources = nil },
	}
	for i, change := range changed {
		o2, p2 := o, append([]string(nil), pkgs...)
		change(&o2, &p2)
		if k, _ := stageKey(o2, p2); k == k1 {
			t.Errorf("change %d did not change the stage key", i)
		}
	}
	// A Go-only change (BinDir, Version) keeps the cached package stage.
	o3 := o
	o3.BinDir, o3.Version = "/elsewhere", "9.9.9"
	if k, _ := stageKey(o3, pkgs); k != k1 {
		t.Errorf("BinDir/Version changed the stage key")
	}
}

func TestWriteFSModes(t *testing.T) {
	fsys := fstest.MapFS{
		"overlay/usr/libexec/vaultpam/x": {Data: []byte("#!/bin/sh\n")},
		"overlay/etc/fstab":              {Data: []byte("tmpfs /var tmpfs\n")},
	}
	dir := t.TempDir()
	if err := writeFS(fsys, "overlay", dir, overlayMode); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{"usr/libexec/vaultpam/x": 0o755, "etc/fstab": 0o644} {
		st, err := os.Stat(filepath.Join(dir, path))
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s mode = %v (%v), want %v", path, st.Mode().Perm(), err, want)
		}
	}
}

// TestBuildReproducible builds the root twice from the same inputs (the
// cached package stage of `make image`, the same binaries) and compares the
// image bytes. It needs root and skips unless the package stage is cached.
func TestBuildReproducible(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("building the root needs root (and is skipped by -short, as in make unit)")
	}
	buildDir := os.Getenv("VAULTPAM_BUILD")
	if buildDir == "" {
		t.Skip("VAULTPAM_BUILD is not set; run `make image` first (make test does)")
	}
	o := DefaultOptions()
	o.CacheDir = filepath.Join(buildDir, "cache")
	o.BinDir = os.Getenv("VAULTPAM_BIN")
	// The image bakes in the update repository's root, as make image does.
	if root := filepath.Join(os.Getenv("VAULTPAM_DIST"), "update-repo", "root.json"); os.Getenv("VAULTPAM_DIST") != "" {
		if _, err := os.Stat(root); err == nil {
			o.UpdateRoot = root
		}
	}
	pkgs, err := Packages()
	if err != nil {
		t.Fatal(err)
	}
	key, err := stageKey(o, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.CacheDir, "packages-"+key[:16]+".tar")); err != nil {
		t.Skipf("package stage %s is not cached in %s; run `make image` first", key[:16], o.CacheDir)
	}
	var sums []string
	for i := 0; i < 2; i++ {
		o.WorkDir = t.TempDir()
		res, err := Build(context.Background(), o)
		if err != nil {
			t.Fatalf("build %d: %v", i+1, err)
		}
		t.Logf("build %d: root image %d bytes, sha256 %s (update root %q)", i+1, res.RootSize, res.RootSHA256, res.UpdateRootSHA256)
		sums = append(sums, res.RootSHA256)
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds from the same inputs differ: %s vs %s", sums[0], sums[1])
	}
}
