package update

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/appliance/image"
	"github.com/vaultpam/appliance/packer/postprocessor/cosign"
	"github.com/vaultpam/appliance/signing"
	"github.com/vaultpam/appliance/update/bundle"
	"github.com/vaultpam/appliance/update/release"
	"github.com/vaultpam/appliance/update/trust"
)

type testUI struct {
	packersdk.BasicUi
	out, errs bytes.Buffer
}

func newUI() *testUI {
	u := &testUI{}
	u.BasicUi = packersdk.BasicUi{Reader: new(bytes.Buffer), Writer: &u.out, ErrorWriter: &u.errs}
	return u
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// devEnv: the development key's empty password, SOURCE_DATE_EPOCH for the
// SBOM.
var devEnv = env(map[string]string{"COSIGN_PASSWORD": "", "SOURCE_DATE_EPOCH": "1767225600"})

// initRepo creates dist's development key and update repository as `make
// ova` does before Packer runs, and returns the root an image bakes in.
func initRepo(t *testing.T, dist string) []byte {
	t.Helper()
	sv, _, err := signing.ReleaseKey(context.Background(), "", signing.EnvPassword(devEnv), dist, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &trust.Repo{Dir: filepath.Join(dist, "update-repo"), Signer: sv}
	if err := r.Init(); err != nil {
		t.Fatal(err)
	}
	root, err := r.RootBytes()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// fakeImage writes an image.json and slot files of random bytes, as
// image.Build leaves them, baking root in.
func fakeImage(t *testing.T, version string, root []byte) string {
	t.Helper()
	dir := t.TempDir()
	sum := sha256.Sum256(root)
	m := image.Manifest{Version: version, SourceDateEpoch: 1767225600, RootHash: strings.Repeat("3c", 32),
		VerityUUID: "0e4b7f2a-1c2d-8e3f-9a4b-5c6d7e8f9a0b", UpdateRoot: hex.EncodeToString(sum[:]),
		Slot: image.SlotFiles{Root: "root.squashfs", Verity: "root.verity", UKI: "uki.efi"}}
	for _, n := range []string{"root.squashfs", "root.verity", "uki.efi"} {
		f, err := os.Create(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(f, rand.Reader, 1<<20)
		f.Close()
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "image.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "image.json")
}

func input(imageJSON, version string) *packersdk.MockArtifact {
	return &packersdk.MockArtifact{FilesValue: []string{filepath.Join(filepath.Dir(imageJSON), "disk.raw")},
		StateValues: map[string]any{"image_json": imageJSON, "version": version, "dpkg_status": filepath.Join("..", "..", "..", "signing", "sbom", "testdata", "status")}}
}

func configured(t *testing.T, raw map[string]any) *PostProcessor {
	t.Helper()
	p := New()
	p.LookupEnv = devEnv
	if err := p.Configure(raw); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

func needISOTools(t *testing.T) {
	for _, tool := range []string{"genisoimage", "isoinfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian package genisoimage; make deps)", tool)
		}
	}
}

// TestPostProcessTwoVersions: 0.1.0 then 0.2.0 into one dist: one
// repository, one root, both bundles listed, each ISO verifies with the
// root the images baked in, and vaultpam-cosign after it signs the ISO and
// lists everything in SHA256SUMS.
func TestPostProcessTwoVersions(t *testing.T) {
	needISOTools(t)
	dist := t.TempDir()
	root := initRepo(t, dist)
	for _, v := range []string{"0.1.0", "0.2.0"} {
		ui := newUI()
		p := configured(t, map[string]any{"dist_dir": dist, "version": v})
		art, keep, force, err := p.PostProcess(context.Background(), ui, input(fakeImage(t, v, root), v))
		if err != nil {
			t.Fatalf("PostProcess %s: %v\n%s%s", v, err, ui.out.String(), ui.errs.String())
		}
		if !keep || !force {
			t.Errorf("keep, force = %v, %v; the input disk must be kept", keep, force)
		}
		var names []string
		for _, f := range art.Files() {
			names = append(names, filepath.Base(f))
		}
		want := "vaultpam-connector-" + v + ".update vaultpam-connector-" + v + ".update.sig vaultpam-connector-" + v + ".update.sigstore.json vaultpam-connector-" + v + "-update.iso"
		if strings.Join(names, " ") != want {
			t.Errorf("files = %v, want %s", names, want)
		}
		if art.State("version") != v || art.State("dpkg_status") == nil || art.State("bundle_sha256") != art.Id() {
			t.Errorf("artifact state: version %v dpkg_status %v", art.State("version"), art.State("dpkg_status"))
		}
		if !strings.Contains(ui.out.String(), "The image trusts root version 1") {
			t.Errorf("output does not say which root the image trusts:\n%s", ui.out.String())
		}
		cui := newUI()
		cp := cosign.New()
		cp.LookupEnv = devEnv
		if err := cp.Configure(map[string]any{"dist_dir": dist}); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := cp.PostProcess(context.Background(), cui, art); err != nil {
			t.Fatalf("vaultpam-cosign after vaultpam-update: %v\n%s", err, cui.errs.String())
		}
	}
	if now, _ := os.ReadFile(filepath.Join(dist, "update-repo", "root.json")); !bytes.Equal(now, root) {
		t.Error("the second build changed the repository's root")
	}
	pub, _ := signing.LoadPublicKey(filepath.Join(dist, "cosign.pub"))
	checked, err := signing.VerifyRelease(pub, dist)
	if err != nil {
		t.Fatalf("VerifyRelease(dist) = %v", err)
	}
	for _, want := range []string{"vaultpam-connector-0.1.0.update.sig", "vaultpam-connector-0.1.0-update.iso.sig", "vaultpam-connector-0.2.0.update.sig", "vaultpam-connector-0.2.0-update.iso.sig"} {
		if !strings.Contains(" "+strings.Join(checked, " ")+" ", " "+want+" ") {
			t.Errorf("SHA256SUMS does not cover %s: %v", want, checked)
		}
	}
	// Both versions are listed, each ISO verifies on its own.
	for _, v := range []string{"0.1.0", "0.2.0"} {
		md := isoMetadata(t, filepath.Join(dist, release.ISOName("vaultpam-connector", v)))
		vf := &trust.Verifier{BakedRoot: root, StateDir: t.TempDir()}
		for _, name := range []string{"vaultpam-connector-0.1.0.update", "vaultpam-connector-" + v + ".update"} {
			if _, err := vf.Target(md, name); err != nil {
				t.Errorf("ISO %s: target %s: %v", v, name, err)
			}
		}
	}
}

// isoMetadata extracts the ISO's metadata directory (isoinfo, no mount).
func isoMetadata(t *testing.T, iso string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("isoinfo", "-J", "-f", "-i", iso).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		if !strings.HasPrefix(f, "/"+release.ISOMetadataDir+"/") {
			continue
		}
		b, err := exec.Command("isoinfo", "-J", "-i", iso, "-x", f).Output()
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
	}
	return dir
}

func TestPostProcessRefuses(t *testing.T) {
	needISOTools(t)
	dist := t.TempDir()
	root := initRepo(t, dist)
	otherDist := t.TempDir()
	otherRoot := initRepo(t, otherDist)
	for _, tc := range []struct {
		name string
		raw  map[string]any
		in   *packersdk.MockArtifact
		want string
	}{
		{"version differs", map[string]any{"dist_dir": dist, "version": "0.3.0"}, input(fakeImage(t, "0.2.0", root), "0.2.0"), "version 0.3.0 is configured but"},
		{"no repository", map[string]any{"dist_dir": dist, "repo_dir": filepath.Join(dist, "nope")}, input(fakeImage(t, "0.2.0", root), "0.2.0"), "hint: vaultpam-sign update-init"},
		{"image of another repository", map[string]any{"dist_dir": dist}, input(fakeImage(t, "0.2.0", otherRoot), "0.2.0"), "built against another update repository"},
		{"not an image", map[string]any{"dist_dir": dist}, &packersdk.MockArtifact{FilesValue: []string{"x.ova"}}, "put vaultpam-update right after the vaultpam-appliance builder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := configured(t, tc.raw).PostProcess(context.Background(), newUI(), tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("PostProcess = %v, want %q", err, tc.want)
			}
		})
	}
	if err := New().Configure(map[string]any{"version": "1.0"}); err == nil || !strings.Contains(err.Error(), "MAJOR.MINOR.PATCH") {
		t.Errorf("Configure(version 1.0) = %v", err)
	}
}

// checkBundle is shared with the real-image test: the bundle reads back
// against the signed targets entry.
func checkBundle(t *testing.T, path string, tgt *trust.Target) *bundle.Manifest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := bundle.Check(f, tgt.Custom.ManifestSHA256)
	if err != nil {
		t.Fatalf("bundle.Check(%s) = %v", path, err)
	}
	return m
}
