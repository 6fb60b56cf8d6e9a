package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
)

func newSigner(t *testing.T) signature.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := SignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func target(version string) Target {
	return Target{Name: "vaultpam-connector-" + version + ".update", Length: 1234, SHA256: strings.Repeat("ab", 32),
		Custom: Custom{Version: version, ManifestSHA256: strings.Repeat("cd", 32)}}
}

// newRepo makes a repository with one target and returns it with the root
// an image would bake in.
func newRepo(t *testing.T) (*Repo, []byte) {
	t.Helper()
	r := &Repo{Dir: t.TempDir(), Signer: newSigner(t)}
	if err := r.Init(); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTarget(target("0.2.0")); err != nil {
		t.Fatal(err)
	}
	root, err := r.RootBytes()
	if err != nil {
		t.Fatal(err)
	}
	return r, root
}

// snapshotDir copies the repository's files as they are now (an offer
// made at this moment).
func snapshotDir(t *testing.T, r *Repo) string {
	t.Helper()
	dst := t.TempDir()
	entries, _ := os.ReadDir(r.Dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(r.Dir, e.Name()))
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
	return dst
}

func TestVerifyTarget(t *testing.T) {
	r, root := newRepo(t)
	v := &Verifier{BakedRoot: root, StateDir: t.TempDir()}
	got, err := v.Target(r.Dir, "vaultpam-connector-0.2.0.update")
	if err != nil {
		t.Fatalf("Target = %v", err)
	}
	want := target("0.2.0")
	if got.Length != want.Length || got.SHA256 != want.SHA256 || got.Custom != want.Custom {
		t.Errorf("Target = %+v, want %+v", got, want)
	}
	if _, err := v.Target(r.Dir, "vaultpam-connector-9.9.9.update"); !errors.Is(err, ErrNoTarget) {
		t.Errorf("unknown target: %v, want ErrNoTarget", err)
	}
}

func TestInitKeepsTheRoot(t *testing.T) {
	r, root := newRepo(t)
	if err := r.Init(); err != nil {
		t.Fatalf("second Init = %v", err)
	}
	again, _ := r.RootBytes()
	if string(again) != string(root) {
		t.Error("a second Init changed the root an image bakes in")
	}
	other := &Repo{Dir: r.Dir, Signer: newSigner(t)}
	if err := other.Init(); err == nil || !strings.Contains(err.Error(), "does not trust the signing key") {
		t.Errorf("Init with another key = %v, want a refusal naming the key", err)
	}
}

func TestUnknownKeyRefused(t *testing.T) {
	_, root := newRepo(t)
	foreign, _ := newRepo(t) // a repository signed by another key
	v := &Verifier{BakedRoot: root, StateDir: t.TempDir()}
	if _, err := v.Target(foreign.Dir, "vaultpam-connector-0.2.0.update"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("metadata of another key: %v, want ErrUntrusted", err)
	}
}

func TestTamperedTargetsRefused(t *testing.T) {
	r, root := newRepo(t)
	dir := snapshotDir(t, r)
	p := filepath.Join(dir, "targets.json")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), `"length": 1234`, `"length": 1235`, 1)), 0o644)
	v := &Verifier{BakedRoot: root, StateDir: t.TempDir()}
	if _, err := v.Target(dir, "vaultpam-connector-0.2.0.update"); err == nil {
		t.Error("tampered targets.json accepted")
	}
}

func TestExpiredTimestampRefused(t *testing.T) {
	r, root := newRepo(t)
	later := time.Now().Add(TimestampLifetime + time.Hour)
	v := &Verifier{BakedRoot: root, StateDir: t.TempDir(), Now: func() time.Time { return later }}
	_, err := v.Target(r.Dir, "vaultpam-connector-0.2.0.update")
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("metadata past its timestamp's expiry: %v, want ErrExpired", err)
	}
	// A re-signed timestamp makes it fresh again.
	r.Now = func() time.Time { return later }
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Target(r.Dir, "vaultpam-connector-0.2.0.update"); err != nil {
		t.Errorf("after Refresh: %v", err)
	}
}

// TestReplayRefused: an offer made of older (still valid, correctly
// signed) metadata than the appliance has seen is refused.
func TestReplayRefused(t *testing.T) {
	r, root := newRepo(t)
	old := snapshotDir(t, r)
	if err := r.AddTarget(target("0.3.0")); err != nil {
		t.Fatal(err)
	}
	v := &Verifier{BakedRoot: root, StateDir: t.TempDir()}
	if _, err := v.Target(r.Dir, "vaultpam-connector-0.3.0.update"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Target(old, "vaultpam-connector-0.2.0.update"); !errors.Is(err, ErrRollback) {
		t.Errorf("replayed older metadata: %v, want ErrRollback", err)
	}
}

// TestKeyRotation: the release moves to a new key with root version 2;
// an appliance baked with root 1 follows, and from then on metadata
// signed only by the old key is refused.
func TestKeyRotation(t *testing.T) {
	r, root1 := newRepo(t)
	before := snapshotDir(t, r)
	if err := r.Rotate(newSigner(t)); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTarget(target("0.3.0")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "2.root.json")); err != nil {
		t.Fatalf("no 2.root.json after Rotate: %v", err)
	}
	v := &Verifier{BakedRoot: root1, StateDir: t.TempDir()}
	if _, err := v.Target(r.Dir, "vaultpam-connector-0.3.0.update"); err != nil {
		t.Fatalf("appliance with root 1 after the rotation: %v", err)
	}
	if got := v.RootVersion(); got != 2 {
		t.Errorf("anchor root version = %d, want 2", got)
	}
	// The old key's metadata (before the rotation) is no longer trusted.
	if _, err := v.Target(before, "vaultpam-connector-0.2.0.update"); err == nil {
		t.Error("metadata signed by the rotated-out key accepted after the rotation")
	}
}

func TestMissingFileIsNotFound(t *testing.T) {
	f := dirFetcher{dir: t.TempDir()}
	if _, err := f.DownloadFile(localURL+"2.root.json", 100, 0); err == nil {
		t.Fatal("missing file: no error")
	}
	for _, bad := range []string{localURL + "../x", localURL + ".hidden", "http://x/1.root.json"} {
		if _, err := f.DownloadFile(bad, 100, 0); err == nil {
			t.Errorf("DownloadFile(%q) = nil error", bad)
		}
	}
}

// TestPlantedRootIsNotAnAnchor: a root in StateDir that the baked root
// did not sign (someone who could write /data/update put their own there,
// as root.json or as the next N.root.json) is never trusted: the check
// always walks from the baked root. Before the fix the persisted
// root.json was the anchor whenever its version was at least the baked
// one's, and an attacker-signed update verified.
func TestPlantedRootIsNotAnAnchor(t *testing.T) {
	_, baked := newRepo(t)
	evil, evilRoot := newRepo(t)
	if err := evil.AddTarget(target("6.6.6")); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	os.WriteFile(filepath.Join(state, "root.json"), evilRoot, 0o644)
	os.WriteFile(filepath.Join(state, "2.root.json"), evilRoot, 0o644)
	v := &Verifier{BakedRoot: baked, StateDir: state}
	if got := v.RootVersion(); got != 1 {
		t.Errorf("RootVersion() with a planted root = %d, want 1 (the baked one)", got)
	}
	if _, err := v.Target(evil.Dir, "vaultpam-connector-6.6.6.update"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("Target(metadata signed by a planted root) = %v, want ErrUntrusted", err)
	}
}

// TestKeptChainWalksWithoutTheOffersChain: once the appliance walked a
// rotation, an offer that carries only the newest metadata still
// verifies (the kept 2.root.json is walked from the baked root), and old
// metadata signed by the rotated-out key stays refused.
func TestKeptChainWalksWithoutTheOffersChain(t *testing.T) {
	r, root1 := newRepo(t)
	before := snapshotDir(t, r)
	if err := r.Rotate(newSigner(t)); err != nil {
		t.Fatal(err)
	}
	v := &Verifier{BakedRoot: root1, StateDir: t.TempDir()}
	if _, err := v.Target(r.Dir, "vaultpam-connector-0.2.0.update"); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTarget(target("0.3.0")); err != nil {
		t.Fatal(err)
	}
	offer := snapshotDir(t, r)
	os.Remove(filepath.Join(offer, "2.root.json"))
	if _, err := v.Target(offer, "vaultpam-connector-0.3.0.update"); err != nil {
		t.Errorf("offer without the root chain after a walked rotation: %v", err)
	}
	if got := v.RootVersion(); got != 2 {
		t.Errorf("RootVersion() = %d, want 2", got)
	}
	if _, err := v.Target(before, "vaultpam-connector-0.2.0.update"); err == nil {
		t.Error("metadata signed by the rotated-out key accepted")
	}
}

// TestStateDirSymlinkRefused: trusted metadata in a directory that
// is a symbolic link is refused, not followed.
func TestStateDirSymlinkRefused(t *testing.T) {
	r, root := newRepo(t)
	base := t.TempDir()
	os.Symlink(t.TempDir(), filepath.Join(base, "tuf"))
	v := &Verifier{BakedRoot: root, StateDir: filepath.Join(base, "tuf")}
	if _, err := v.Target(r.Dir, "vaultpam-connector-0.2.0.update"); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("Target with a symlinked state dir = %v, want a refusal", err)
	}
}
