package release

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/vaultpam/appliance/update/bundle"
	"github.com/vaultpam/appliance/update/trust"
)

func newSigner(t *testing.T) signature.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.SignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeSlot writes slot parts of random bytes (the format does not look
// inside them).
func fakeSlot(t *testing.T, version string) Slot {
	t.Helper()
	dir := t.TempDir()
	s := Slot{Version: version, RootHash: strings.Repeat("5a", 32), VerityUUID: "0e4b7f2a-1c2d-8e3f-9a4b-5c6d7e8f9a0b", SourceDateEpoch: 1767225600}
	for _, p := range []struct {
		dst  *string
		name string
		size int64
	}{{&s.Root, "root.squashfs", 3<<20 + 17}, {&s.Verity, "root.verity", 40960}, {&s.UKI, "uki.efi", 1<<20 + 5}} {
		*p.dst = filepath.Join(dir, p.name)
		f, err := os.Create(*p.dst)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(f, rand.Reader, p.size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return s
}

// release writes version's bundle into dist, publishes it and writes its
// ISO, as the vaultpam-update post-processor does.
func release(t *testing.T, repo *trust.Repo, dist, version string) (b *Bundle, iso string) {
	t.Helper()
	b, err := WriteBundle(filepath.Join(dist, BundleName("vaultpam-connector", version)), fakeSlot(t, version))
	if err != nil {
		t.Fatalf("WriteBundle: %v", err)
	}
	if err := Publish(repo, b); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// The signature's content does not matter to the ISO (the packer
	// post-processor's test checks real ones with cosign).
	if err := os.WriteFile(b.Path+".sig", []byte("c2lnbmF0dXJl"), 0o644); err != nil {
		t.Fatal(err)
	}
	iso = filepath.Join(dist, ISOName("vaultpam-connector", version))
	if err := WriteISO(t.Context(), ISO{Out: iso, RepoDir: repo.Dir, Bundle: b.Path, Signature: b.Path + ".sig"}); err != nil {
		t.Fatalf("WriteISO: %v", err)
	}
	return b, iso
}

func needISOTools(t *testing.T) {
	for _, tool := range []string{"genisoimage", "isoinfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian package genisoimage; make deps)", tool)
		}
	}
}

// isoFiles lists the ISO's files as the appliance sees them (Joliet names).
func isoFiles(t *testing.T, iso string) []string {
	t.Helper()
	out, err := exec.Command("isoinfo", "-J", "-f", "-i", iso).Output()
	if err != nil {
		t.Fatalf("isoinfo -f: %v", err)
	}
	files := strings.Fields(string(out))
	sort.Strings(files)
	return files
}

// extract copies the ISO's files below dir (isoinfo -x, no mount).
func extract(t *testing.T, iso, dir string) {
	t.Helper()
	for _, f := range isoFiles(t, iso) {
		if !strings.HasPrefix(f, "/"+ISODir+"/") || !strings.Contains(filepath.Base(f), ".") {
			continue // directories
		}
		data, err := exec.Command("isoinfo", "-J", "-i", iso, "-x", f).Output()
		if err != nil {
			t.Fatalf("isoinfo -x %s: %v", f, err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(f))
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestISO(t *testing.T) {
	needISOTools(t)
	dist := t.TempDir()
	repo := &trust.Repo{Dir: filepath.Join(dist, "update-repo"), Signer: newSigner(t)}
	if err := repo.Init(); err != nil {
		t.Fatal(err)
	}
	baked, err := repo.RootBytes()
	if err != nil {
		t.Fatal(err)
	}
	release(t, repo, dist, "0.1.0")
	b, iso := release(t, repo, dist, "0.2.0")

	want := []string{
		"/vaultpam-update",
		"/vaultpam-update/metadata",
		"/vaultpam-update/metadata/1.root.json",
		"/vaultpam-update/metadata/snapshot.json",
		"/vaultpam-update/metadata/targets.json",
		"/vaultpam-update/metadata/timestamp.json",
		"/vaultpam-update/vaultpam-connector-0.2.0.update",
		"/vaultpam-update/vaultpam-connector-0.2.0.update.sig",
	}
	if got := isoFiles(t, iso); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ISO files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if out, err := exec.Command("isoinfo", "-d", "-i", iso).Output(); err != nil || !bytes.Contains(out, []byte("Volume id: "+ISOLabel+"\n")) {
		t.Errorf("isoinfo -d (%v) does not name the volume %s:\n%s", err, ISOLabel, out)
	}

	// The appliance's side: the metadata from the CD-ROM verifies with the
	// root the image carries, and the bundle read from it checks against it.
	cd := t.TempDir()
	extract(t, iso, cd)
	v := &trust.Verifier{BakedRoot: baked, StateDir: t.TempDir()}
	tgt, err := v.Target(filepath.Join(cd, ISOMetadataDir), filepath.Base(b.Path))
	if err != nil {
		t.Fatalf("Verifier.Target(metadata from the ISO) = %v", err)
	}
	if tgt.Custom.Version != "0.2.0" || tgt.SHA256 != b.SHA256 || tgt.Length != b.Size || tgt.Custom.ManifestSHA256 != b.ManifestSHA256 || tgt.Custom.RootHash != b.Manifest.RootHash {
		t.Errorf("target = %+v, want the bundle's %s, %d bytes, manifest %s", tgt, b.SHA256, b.Size, b.ManifestSHA256)
	}
	f, err := os.Open(filepath.Join(cd, ISODir, filepath.Base(b.Path)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := bundle.Check(f, tgt.Custom.ManifestSHA256)
	if err != nil {
		t.Fatalf("bundle.Check(bundle from the ISO) = %v", err)
	}
	if m.Version != "0.2.0" || m.RootHash != b.Manifest.RootHash || m.VerityUUID != b.Manifest.VerityUUID {
		t.Errorf("manifest = %+v", m)
	}
	t.Logf("ISO %s: %d bytes for a %d-byte bundle", filepath.Base(iso), fileSize(t, iso), b.Size)
}

func fileSize(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestISOAfterRotation: an appliance that baked root 1 in accepts an ISO
// made after the key was rotated, because the ISO carries the whole chain.
func TestISOAfterRotation(t *testing.T) {
	needISOTools(t)
	dist := t.TempDir()
	repo := &trust.Repo{Dir: filepath.Join(dist, "update-repo"), Signer: newSigner(t)}
	if err := repo.Init(); err != nil {
		t.Fatal(err)
	}
	baked, _ := repo.RootBytes()
	release(t, repo, dist, "0.1.0")
	if err := repo.Rotate(newSigner(t)); err != nil {
		t.Fatal(err)
	}
	b, iso := release(t, repo, dist, "0.2.0")
	files := strings.Join(isoFiles(t, iso), " ")
	for _, want := range []string{"metadata/1.root.json", "metadata/2.root.json"} {
		if !strings.Contains(files, want) {
			t.Errorf("ISO lacks %s: %s", want, files)
		}
	}
	cd := t.TempDir()
	extract(t, iso, cd)
	v := &trust.Verifier{BakedRoot: baked, StateDir: t.TempDir()}
	if _, err := v.Target(filepath.Join(cd, ISOMetadataDir), filepath.Base(b.Path)); err != nil {
		t.Fatalf("Verifier (root 1) on an ISO made after the rotation = %v", err)
	}
	if n := v.RootVersion(); n != 2 {
		t.Errorf("the appliance anchors on root %d after reading the ISO, want 2", n)
	}
}

// TestWriteISORefuses: an ISO an appliance would refuse is not written.
func TestWriteISORefuses(t *testing.T) {
	needISOTools(t)
	dist := t.TempDir()
	repo := &trust.Repo{Dir: filepath.Join(dist, "update-repo"), Signer: newSigner(t)}
	if err := repo.Init(); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dist, "x.iso")

	// Nothing published yet.
	b, err := WriteBundle(filepath.Join(dist, BundleName("vaultpam-connector", "0.3.0")), fakeSlot(t, "0.3.0"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(b.Path+".sig", []byte("x"), 0o644)
	err = WriteISO(t.Context(), ISO{Out: iso, RepoDir: repo.Dir, Bundle: b.Path, Signature: b.Path + ".sig"})
	if err == nil || !strings.Contains(err.Error(), "timestamp.json") {
		t.Errorf("WriteISO(unpublished) = %v, want it to name the missing timestamp", err)
	}

	// Published, then the file changed.
	if err := Publish(repo, b); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(b.Path, os.O_RDWR, 0)
	f.WriteAt([]byte{0}, 4096)
	f.Close()
	err = WriteISO(t.Context(), ISO{Out: iso, RepoDir: repo.Dir, Bundle: b.Path, Signature: b.Path + ".sig"})
	if err == nil || !strings.Contains(err.Error(), "publish the bundle again") {
		t.Errorf("WriteISO(changed bundle) = %v", err)
	}

	// Another repository's bundle name.
	other := filepath.Join(dist, BundleName("vaultpam-connector", "0.4.0"))
	os.WriteFile(other, []byte("x"), 0o644)
	err = WriteISO(t.Context(), ISO{Out: iso, RepoDir: repo.Dir, Bundle: other, Signature: b.Path + ".sig"})
	if !errors.Is(err, trust.ErrNoTarget) {
		t.Errorf("WriteISO(unlisted bundle) = %v, want ErrNoTarget", err)
	}
	if _, err := os.Stat(iso); !os.IsNotExist(err) {
		t.Errorf("an ISO was written although it would be refused (%v)", err)
	}
}

func TestSlotValidate(t *testing.T) {
	err := Slot{Version: "0.2.0-rc1", Root: "/nonexistent"}.Validate()
	for _, want := range []string{`version "0.2.0-rc1"`, "slot root", "slot verity tree: no file", "slot UKI: no file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q in it", err, want)
		}
	}
}
