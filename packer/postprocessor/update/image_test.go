package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/appliance/image"
	"github.com/vaultpam/appliance/packer/postprocessor/cosign"
	"github.com/vaultpam/appliance/rootfs"
	"github.com/vaultpam/appliance/signing"
	"github.com/vaultpam/appliance/update/bundle"
	"github.com/vaultpam/appliance/update/release"
	"github.com/vaultpam/appliance/update/trust"
)

// realBuild returns the image build `make image` left in VAULTPAM_BUILD and
// the dist directory whose update repository and development key it was
// built against (VAULTPAM_DIST), or skips.
func realBuild(t *testing.T) (build, dist string, m *image.Manifest) {
	t.Helper()
	if testing.Short() {
		t.Skip("publishes the real image (112 MiB twice); not in -short (make unit)")
	}
	build, dist = os.Getenv("VAULTPAM_BUILD"), os.Getenv("VAULTPAM_DIST")
	if build == "" || dist == "" {
		t.Skip("VAULTPAM_BUILD and VAULTPAM_DIST are not set; run `make image` (make test sets them)")
	}
	m, err := image.ReadManifest(filepath.Join(build, "image.json"))
	if err != nil {
		t.Skipf("no image in %s (%v); run `make image`", build, err)
	}
	if m.VerityUUID == "" || m.Slot.Root == "" || m.UpdateRoot == "" {
		t.Skipf("%s/image.json was written by an older image builder (no verity UUID, slot files or update root); run `make image`", build)
	}
	root, err := os.ReadFile(filepath.Join(dist, "update-repo", "root.json"))
	if err != nil {
		t.Skipf("no update repository in %s: %v", dist, err)
	}
	if sum := sha256.Sum256(root); hex.EncodeToString(sum[:]) != m.UpdateRoot {
		t.Skipf("the image in %s was built against another update repository than %s's", build, dist)
	}
	if _, err := os.Stat(filepath.Join(dist, signing.PrivateKeyFile)); err != nil {
		t.Skipf("%s has no development key (a release key built it): %v", dist, err)
	}
	return build, dist, m
}

// copyDist copies the development key pair and the update repository of
// dist, so the test publishes into a copy and leaves dist alone.
func copyDist(t *testing.T, dist string) string {
	t.Helper()
	dst := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(dist, "update-repo"), filepath.Join(dist, signing.PrivateKeyFile),
		filepath.Join(dist, signing.PublicKeyFile), dst+"/").CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v\n%s", dist, err, out)
	}
	return dst
}

// cosignVerify runs the real cosign CLI (VAULTPAM_COSIGN or bin/tools/cosign)
// with its network attempts pointed at a closed loopback port.
func cosignVerify(t *testing.T, dir, file string) {
	t.Helper()
	cli := os.Getenv("VAULTPAM_COSIGN")
	if cli == "" {
		cli, _ = filepath.Abs(filepath.Join("..", "..", "..", "bin", "tools", "cosign"))
	}
	if _, err := os.Stat(cli); err != nil {
		t.Logf("cosign CLI not at %s (make tools): not checking %s with it", cli, file)
		return
	}
	cmd := exec.Command(cli, "verify-blob", "--key", "cosign.pub", "--signature", file+".sig", "--insecure-ignore-tlog", file)
	cmd.Dir, cmd.Env = dir, []string{"HOME=" + dir, "PATH=/usr/bin:/bin",
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=",
		"https_proxy=http://127.0.0.1:9", "http_proxy=http://127.0.0.1:9", "no_proxy="}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Verified OK")) {
		t.Errorf("cosign verify-blob %s: %v\n%s", file, err, out)
	}
}

// TestRealImage publishes the image `make image` built as an update, as
// make ova does (vaultpam-update, then vaultpam-cosign), and checks it the
// way the appliance and a user will: the ISO's metadata verifies with the
// root baked into the image's squashfs, the bundle read back matches the
// signed digests and image.json, its UKI's command line carries the root
// hash and verity UUID (no slot), and cosign verify-blob accepts the
// bundle's and the ISO's signatures.
func TestRealImage(t *testing.T) {
	needISOTools(t)
	build, dist, m := realBuild(t)
	for _, tool := range []string{"unsquashfs", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps)", tool)
		}
	}
	out := copyDist(t, dist)
	in := &packersdk.MockArtifact{FilesValue: []string{filepath.Join(build, "disk.raw")}, StateValues: map[string]any{
		"image_json": filepath.Join(build, "image.json"), "version": m.Version, "dpkg_status": filepath.Join(build, "dpkg-status")}}
	ui := newUI()
	art, _, _, err := configured(t, map[string]any{"dist_dir": out, "version": m.Version}).PostProcess(context.Background(), ui, in)
	if err != nil {
		t.Fatalf("vaultpam-update: %v\n%s%s", err, ui.out.String(), ui.errs.String())
	}
	t.Logf("vaultpam-update:\n%s", ui.out.String())
	cp := cosign.New()
	cp.LookupEnv = devEnv
	if err := cp.Configure(map[string]any{"dist_dir": out}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := cp.PostProcess(context.Background(), newUI(), art); err != nil {
		t.Fatalf("vaultpam-cosign: %v", err)
	}
	bundlePath, iso := art.State("bundle").(string), art.State("iso").(string)

	// The root the image carries, read out of its squashfs.
	rootImage, _, uki := m.Slot.Paths(build)
	baked, err := exec.Command("unsquashfs", "-cat", rootImage, rootfs.UpdateRootPath).Output()
	if err != nil {
		t.Fatalf("unsquashfs -cat %s: %v", rootfs.UpdateRootPath, err)
	}
	if repoRoot, _ := os.ReadFile(filepath.Join(dist, "update-repo", "root.json")); !bytes.Equal(baked, repoRoot) {
		t.Errorf("the image's /%s is not %s/update-repo/root.json", rootfs.UpdateRootPath, dist)
	}

	// The appliance's view: metadata from the ISO, the baked root.
	wantFiles := []string{"/vaultpam-update/metadata/1.root.json", "/vaultpam-update/metadata/snapshot.json",
		"/vaultpam-update/metadata/targets.json", "/vaultpam-update/metadata/timestamp.json",
		"/vaultpam-update/" + filepath.Base(bundlePath), "/vaultpam-update/" + filepath.Base(bundlePath) + ".sig"}
	listing, _ := exec.Command("isoinfo", "-J", "-f", "-i", iso).Output()
	for _, f := range wantFiles {
		if !strings.Contains("\n"+string(listing), "\n"+f+"\n") {
			t.Errorf("the ISO lacks %s:\n%s", f, listing)
		}
	}
	v := &trust.Verifier{BakedRoot: baked, StateDir: t.TempDir()}
	tgt, err := v.Target(isoMetadata(t, iso), filepath.Base(bundlePath))
	if err != nil {
		t.Fatalf("the appliance refuses the ISO's metadata: %v", err)
	}
	onISO, err := exec.Command("isoinfo", "-J", "-i", iso, "-x", "/vaultpam-update/"+filepath.Base(bundlePath)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(onISO); hex.EncodeToString(sum[:]) != tgt.SHA256 || int64(len(onISO)) != tgt.Length {
		t.Errorf("the bundle on the ISO does not match the signed target (%d bytes, sha256 %s)", tgt.Length, tgt.SHA256)
	}
	sigOnISO, _ := exec.Command("isoinfo", "-J", "-i", iso, "-x", "/vaultpam-update/"+filepath.Base(bundlePath)+".sig").Output()
	if sig, _ := os.ReadFile(bundlePath + ".sig"); !bytes.Equal(sig, sigOnISO) || len(sig) == 0 {
		t.Errorf("the ISO's .sig is not the bundle's .sig in dist")
	}
	man := checkBundle(t, bundlePath, tgt)
	if man.Version != m.Version || man.RootHash != m.RootHash || man.VerityUUID != m.VerityUUID || tgt.Custom.RootHash != m.RootHash {
		t.Errorf("bundle manifest %+v does not match image.json (version %s, root hash %s, verity %s)", man, m.Version, m.RootHash, m.VerityUUID)
	}
	for _, p := range man.Parts {
		if p.Name == bundle.PartRoot && p.Size != m.RootSize {
			t.Errorf("root.squashfs is %d bytes, image.json says %d", p.Size, m.RootSize)
		}
	}

	// The UKI inside the bundle is the image's, and its command line
	// names the root, not a slot.
	fromBundle := bundlePart(t, bundlePath, bundle.PartUKI)
	if want, _ := os.ReadFile(uki); !bytes.Equal(fromBundle, want) {
		t.Errorf("the bundle's uki.efi is not the image's")
	}
	ukiFile := filepath.Join(t.TempDir(), "uki.efi")
	os.WriteFile(ukiFile, fromBundle, 0o644)
	cmdFile := filepath.Join(t.TempDir(), "cmdline")
	if b, err := exec.Command("objcopy", "--dump-section", ".cmdline="+cmdFile, ukiFile, filepath.Join(t.TempDir(), "out.efi")).CombinedOutput(); err != nil {
		t.Fatalf("objcopy --dump-section .cmdline: %v\n%s", err, b)
	}
	cmdline, _ := os.ReadFile(cmdFile)
	c := " " + strings.TrimRight(string(cmdline), "\x00\n") + " "
	for _, want := range []string{" vaultpam.roothash=" + m.RootHash + " ", " vaultpam.verity=" + m.VerityUUID + " "} {
		if !strings.Contains(c, want) {
			t.Errorf("the UKI's .cmdline %q lacks %q", c, want)
		}
	}
	if strings.Contains(c, "vaultpam.slot=") {
		t.Errorf("the UKI's .cmdline names a slot: %q", c)
	}

	// A user's view: cosign and SHA256SUMS.
	cosignVerify(t, out, filepath.Base(bundlePath))
	cosignVerify(t, out, filepath.Base(iso))
	pub, _ := signing.LoadPublicKey(filepath.Join(out, signing.PublicKeyFile))
	if _, err := signing.VerifyRelease(pub, out); err != nil {
		t.Errorf("VerifyRelease: %v", err)
	}
	for _, f := range []string{bundlePath, iso} {
		st, _ := os.Stat(f)
		t.Logf("%s: %d bytes (%.1f MiB)", filepath.Base(f), st.Size(), float64(st.Size())/(1<<20))
	}
	if !strings.HasSuffix(iso, release.ISOName("vaultpam-connector", m.Version)) {
		t.Errorf("ISO name %s", iso)
	}
}

// bundlePart returns one part of a bundle file.
func bundlePart(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := bundle.NewReader(f, "")
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, pr, err := r.Next()
		if err != nil {
			t.Fatalf("no part %s: %v", name, err)
		}
		b, err := io.ReadAll(pr)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name == name {
			return b
		}
	}
}
