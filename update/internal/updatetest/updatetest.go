// Package updatetest builds what the updater's tests install: real
// bundles with a real dm-verity tree (veritysetup), real signed TUF
// repositories, and a real GPT disk (sfdisk) whose partitions are loop
// devices when the machine has them, or files otherwise, laid out like the
// appliance's, with a fake /sys showing which slot runs.
package updatetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/vaultpam/appliance/update/bundle"
	"github.com/vaultpam/appliance/update/trust"
)

// NeedTools skips the test when a tool it needs is missing.
func NeedTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps installs it): %v", tool, err)
		}
	}
}

// Image is a slot image: root, verity tree, UKI, as files.
type Image struct {
	Version  string
	Root     string
	Verity   string
	UKI      string
	RootHash string
	UUID     string
}

var rootHashRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})`)

// MakeImage makes a slot image of version with a root of rootBytes random
// bytes (a multiple of 4096), a real verity tree and a fake UKI whose
// bytes name the version.
func MakeImage(t testing.TB, version string, rootBytes int) Image {
	t.Helper()
	NeedTools(t, "veritysetup")
	dir := t.TempDir()
	im := Image{Version: version, Root: filepath.Join(dir, "root.squashfs"), Verity: filepath.Join(dir, "root.verity"), UKI: filepath.Join(dir, "uki.efi")}
	seed := sha256.Sum256([]byte(version))
	r := mrand.New(mrand.NewChaCha8(seed))
	root := make([]byte, rootBytes)
	for i := range root {
		root[i] = byte(r.Uint32())
	}
	must(t, os.WriteFile(im.Root, root, 0o644))
	must(t, os.WriteFile(im.Verity, nil, 0o644))
	uki := []byte(strings.Repeat("MZ fake UKI of VaultPAM "+version+"\n", 200))
	must(t, os.WriteFile(im.UKI, uki, 0o644))
	h := hex.EncodeToString(seed[:16])
	im.UUID = h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
	out, err := exec.Command("veritysetup", "format", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096",
		"--salt="+hex.EncodeToString(seed[:]), "--uuid="+im.UUID, im.Root, im.Verity).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	m := rootHashRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("veritysetup printed no root hash:\n%s", out)
	}
	im.RootHash = string(m[1])
	return im
}

// Bundle writes im as a bundle into dir and returns its path and the
// manifest's digest.
func (im Image) Bundle(t testing.TB, dir string) (string, string) {
	t.Helper()
	out := filepath.Join(dir, "vaultpam-connector-"+im.Version+".update")
	_, digest, err := bundle.WriteFile(out, bundle.Manifest{Version: im.Version, RootHash: im.RootHash, VerityUUID: im.UUID, SourceDateEpoch: 1767225600},
		[]bundle.Source{{Name: bundle.PartRoot, Path: im.Root}, {Name: bundle.PartVerity, Path: im.Verity}, {Name: bundle.PartUKI, Path: im.UKI}})
	if err != nil {
		t.Fatal(err)
	}
	return out, digest
}

// Repo is a signed release repository.
type Repo struct {
	*trust.Repo
	Root []byte // the root an image bakes in
}

// NewRepo makes a repository signed by a fresh key.
func NewRepo(t testing.TB, now func() time.Time) *Repo {
	t.Helper()
	r := &trust.Repo{Dir: t.TempDir(), Signer: NewSigner(t), Now: now}
	must(t, r.Init())
	root, err := r.RootBytes()
	must(t, err)
	return &Repo{Repo: r, Root: root}
}

// NewSigner returns a signer with a fresh P-256 key.
func NewSigner(t testing.TB) signature.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	s, err := trust.SignerFromKey(k)
	must(t, err)
	return s
}

// AddBundle lists the bundle at path in the repository.
func (r *Repo) AddBundle(t testing.TB, path, version, manifestDigest string) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	sum := sha256.Sum256(b)
	must(t, r.AddTarget(trust.Target{Name: filepath.Base(path), Length: int64(len(b)), SHA256: hex.EncodeToString(sum[:]),
		Custom: trust.Custom{Version: version, ManifestSHA256: manifestDigest}}))
}

// Offer copies the repository's metadata as it is now and the bundle into
// a fresh directory, the way the connector lays out a download.
func (r *Repo) Offer(t testing.TB, bundlePath string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(r.Dir)
	must(t, err)
	for _, e := range entries {
		if e.Type().IsRegular() {
			copyFile(t, filepath.Join(r.Dir, e.Name()), filepath.Join(dst, e.Name()))
		}
	}
	if bundlePath != "" {
		copyFile(t, bundlePath, filepath.Join(dst, filepath.Base(bundlePath)))
	}
	return dst
}

// Offered makes image version, bundles it, lists it in r and returns the
// offer directory and the target name.
func (r *Repo) Offered(t testing.TB, version string, rootBytes int) (dir, target string, im Image) {
	t.Helper()
	im = MakeImage(t, version, rootBytes)
	path, digest := im.Bundle(t, t.TempDir())
	r.AddBundle(t, path, version, digest)
	return r.Offer(t, path), filepath.Base(path), im
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	must(t, err)
	must(t, os.WriteFile(dst, b, 0o644))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// RandomBytes returns n reproducible bytes.
func RandomBytes(n int, seed uint64) []byte {
	r := mrand.New(mrand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
