package trust

import (
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/vaultpam/appliance/connector/atomicfile"
)

// Lifetimes of the metadata a release writes. The timestamp is the
// freshness signal: an appliance refuses an offer whose timestamp expired,
// so a release process re-signs it (Repo.Refresh) at least this often.
const (
	RootLifetime      = 5 * 365 * 24 * time.Hour
	TargetsLifetime   = 365 * 24 * time.Hour
	SnapshotLifetime  = 365 * 24 * time.Hour
	TimestampLifetime = 30 * 24 * time.Hour
)

// Repo is a TUF repository of release metadata in a directory. One key
// signs every role (the release key); Rotate moves to a new one.
type Repo struct {
	Dir string
	// Signer signs with the current release key; its public key must be the
	// one the newest root trusts.
	Signer signature.Signer
	// Now is the clock for expiry dates; nil means time.Now.
	Now func() time.Time
}

func (r *Repo) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// Init makes the repository's first root (1.root.json and root.json),
// trusting the signer's key for every role, unless the directory already
// has a root: then it checks the signer is the key that root trusts. The
// root is what images bake in, so it is made once and kept.
func (r *Repo) Init() error {
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return err
	}
	key, err := r.key()
	if err != nil {
		return err
	}
	root, err := r.root()
	switch {
	case err == nil:
		if _, ok := root.Signed.Keys[keyID(key)]; !ok {
			return fmt.Errorf("update repository %s: its root (version %d) does not trust the signing key %s; rotate to it (trust.Repo.Rotate) or sign with the key the root trusts", r.Dir, root.Signed.Version, keyID(key))
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	root = metadata.Root(r.now().Add(RootLifetime))
	root.Signed.ConsistentSnapshot = false
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if err := root.Signed.AddKey(key, role); err != nil {
			return err
		}
	}
	if _, err := root.Sign(r.Signer); err != nil {
		return fmt.Errorf("signing the update root: %w", err)
	}
	return r.writeRoot(root)
}

// Rotate makes root version N+1 that trusts next's key for every role
// instead of the current one, signed by both (so an appliance that trusts
// root N accepts N+1), and re-signs targets, snapshot and timestamp with
// next. The repository's Signer becomes next.
func (r *Repo) Rotate(next signature.Signer) error {
	root, err := r.root()
	if err != nil {
		return err
	}
	oldKey, err := r.key()
	if err != nil {
		return err
	}
	newPub, err := next.PublicKey()
	if err != nil {
		return err
	}
	newKey, err := metadata.KeyFromPublicKey(newPub)
	if err != nil {
		return err
	}
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if err := root.Signed.RevokeKey(keyID(oldKey), role); err != nil {
			return err
		}
		if err := root.Signed.AddKey(newKey, role); err != nil {
			return err
		}
	}
	root.Signed.Version++
	root.Signed.Expires = r.now().Add(RootLifetime)
	root.ClearSignatures()
	for _, s := range []signature.Signer{r.Signer, next} {
		if _, err := root.Sign(s); err != nil {
			return fmt.Errorf("signing root version %d: %w", root.Signed.Version, err)
		}
	}
	if err := r.writeRoot(root); err != nil {
		return err
	}
	r.Signer = next
	return r.resign(nil)
}

// AddTarget lists (or replaces) a target and re-signs targets, snapshot
// and timestamp, each with its version one higher.
func (r *Repo) AddTarget(t Target) error {
	if _, err := r.root(); err != nil {
		return fmt.Errorf("update repository %s has no root: %w (run Init first)", r.Dir, err)
	}
	custom, err := json.Marshal(t.Custom)
	if err != nil {
		return err
	}
	raw := json.RawMessage(custom)
	if _, err := hex.DecodeString(t.SHA256); err != nil || len(t.SHA256) != 64 {
		return fmt.Errorf("target %s: sha256 %q is not 64 hex digits", t.Name, t.SHA256)
	}
	tf := &metadata.TargetFiles{Length: t.Length, Hashes: metadata.Hashes{"sha256": mustHex(t.SHA256)}, Custom: &raw, Path: t.Name}
	return r.resign(func(targets *metadata.Metadata[metadata.TargetsType]) {
		targets.Signed.Targets[t.Name] = tf
	})
}

// Refresh re-signs the timestamp (a new version with a new expiry): what a
// release process does at least every TimestampLifetime so appliances keep
// accepting its offers.
func (r *Repo) Refresh() error {
	ts, err := load[metadata.TimestampType](r.path("timestamp.json"))
	if err != nil {
		return err
	}
	ts.Signed.Version++
	ts.Signed.Expires = r.now().Add(TimestampLifetime)
	ts.ClearSignatures()
	if _, err := ts.Sign(r.Signer); err != nil {
		return err
	}
	return write(r.path("timestamp.json"), ts)
}

// resign applies edit to targets (a new one when there is none) and signs
// targets, snapshot and timestamp anew.
func (r *Repo) resign(edit func(*metadata.Metadata[metadata.TargetsType])) error {
	now := r.now()
	targets, err := load[metadata.TargetsType](r.path("targets.json"))
	if errors.Is(err, fs.ErrNotExist) {
		targets, err = metadata.Targets(now.Add(TargetsLifetime)), nil
		targets.Signed.Version = 0
	}
	if err != nil {
		return err
	}
	if edit != nil {
		edit(targets)
	}
	targets.Signed.Version++
	targets.Signed.Expires = now.Add(TargetsLifetime)
	targets.ClearSignatures()
	if _, err := targets.Sign(r.Signer); err != nil {
		return fmt.Errorf("signing targets: %w", err)
	}
	snapshot, err := load[metadata.SnapshotType](r.path("snapshot.json"))
	if errors.Is(err, fs.ErrNotExist) {
		snapshot, err = metadata.Snapshot(), nil
		snapshot.Signed.Version = 0
	}
	if err != nil {
		return err
	}
	snapshot.Signed.Version++
	snapshot.Signed.Expires = now.Add(SnapshotLifetime)
	snapshot.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metadata.MetaFile(targets.Signed.Version)}
	snapshot.ClearSignatures()
	if _, err := snapshot.Sign(r.Signer); err != nil {
		return fmt.Errorf("signing snapshot: %w", err)
	}
	timestamp, err := load[metadata.TimestampType](r.path("timestamp.json"))
	if errors.Is(err, fs.ErrNotExist) {
		timestamp, err = metadata.Timestamp(), nil
		timestamp.Signed.Version = 0
	}
	if err != nil {
		return err
	}
	timestamp.Signed.Version++
	timestamp.Signed.Expires = now.Add(TimestampLifetime)
	timestamp.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metadata.MetaFile(snapshot.Signed.Version)}
	timestamp.ClearSignatures()
	if _, err := timestamp.Sign(r.Signer); err != nil {
		return fmt.Errorf("signing timestamp: %w", err)
	}
	// Written bottom-up: a reader that sees the new timestamp finds the
	// snapshot and targets it names.
	if err := write(r.path("targets.json"), targets); err != nil {
		return err
	}
	if err := write(r.path("snapshot.json"), snapshot); err != nil {
		return err
	}
	return write(r.path("timestamp.json"), timestamp)
}

func (r *Repo) path(name string) string { return filepath.Join(r.Dir, name) }

func (r *Repo) key() (*metadata.Key, error) {
	if r.Signer == nil {
		return nil, errors.New("update repository: no signing key")
	}
	pub, err := r.Signer.PublicKey()
	if err != nil {
		return nil, err
	}
	return metadata.KeyFromPublicKey(pub)
}

// root loads the newest root.
func (r *Repo) root() (*metadata.Metadata[metadata.RootType], error) {
	return load[metadata.RootType](r.path("root.json"))
}

// RootBytes returns the newest root, as an image bakes it in.
func (r *Repo) RootBytes() ([]byte, error) { return os.ReadFile(r.path("root.json")) }

func (r *Repo) writeRoot(root *metadata.Metadata[metadata.RootType]) error {
	if err := write(r.path(strconv.FormatInt(root.Signed.Version, 10)+".root.json"), root); err != nil {
		return err
	}
	return write(r.path("root.json"), root)
}

func load[T metadata.Roles](path string) (*metadata.Metadata[T], error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m *metadata.Metadata[T]
	var zero metadata.Metadata[T]
	m, err = zero.FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return m, nil
}

func write[T metadata.Roles](path string, m *metadata.Metadata[T]) error {
	b, err := m.ToBytes(true)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

func keyID(k *metadata.Key) string {
	id, err := k.ID()
	if err != nil {
		return ""
	}
	return id
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// SignerFromKey wraps a crypto.Signer (an ECDSA P-256 or Ed25519 private
// key) as the signer Repo uses.
func SignerFromKey(k crypto.PrivateKey) (signature.Signer, error) {
	return signature.LoadSigner(k, crypto.SHA256)
}
