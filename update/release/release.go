// Package release is the release side of image updates: it turns a built
// image's root slot into an update bundle (package bundle), lists the
// bundle in the release's TUF repository (package trust), and writes the
// update ISO an operator attaches to an air-gapped appliance. `make ova`
// runs it through the Packer post-processor vaultpam-update;
// `vaultpam-sign update-*` runs the repository chores (init, key rotation,
// timestamp refresh). Nothing here runs on the appliance.
package release

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vaultpam/appliance/update/bundle"
	"github.com/vaultpam/appliance/update/trust"
	"github.com/vaultpam/appliance/update/version"
)

// BundleName is the file name of version's bundle: NAME-VERSION.update.
func BundleName(name, version string) string { return name + "-" + version + ".update" }

// ISOName is the file name of version's update ISO: NAME-VERSION-update.iso.
func ISOName(name, version string) string { return name + "-" + version + "-update.iso" }

// Slot is a built root slot: what an image build leaves beside its disk
// (appliance/image: image.json's version, root_hash, verity_uuid,
// source_date_epoch and slot files).
type Slot struct {
	Version         string
	RootHash        string
	VerityUUID      string
	SourceDateEpoch int64
	// Root, Verity and UKI are the paths of the squashfs root, its
	// dm-verity hash tree and the UKI.
	Root, Verity, UKI string
}

// Validate reports every problem with s.
func (s Slot) Validate() error {
	var errs []error
	if _, err := version.Parse(s.Version); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []struct{ what, path string }{{"root", s.Root}, {"verity tree", s.Verity}, {"UKI", s.UKI}} {
		if p.path == "" {
			errs = append(errs, fmt.Errorf("slot %s: no file given", p.what))
		} else if st, err := os.Stat(p.path); err != nil {
			errs = append(errs, fmt.Errorf("slot %s: %w", p.what, err))
		} else if !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("slot %s: %s is not a regular file", p.what, p.path))
		}
	}
	return errors.Join(errs...)
}

// Bundle is a written bundle file.
type Bundle struct {
	Path           string
	Manifest       bundle.Manifest
	ManifestSHA256 string // what the TUF target's custom field carries
	SHA256         string // of the whole file, lower-case hex
	Size           int64
}

// WriteBundle writes the slot as a bundle at out (through a temporary file
// in out's directory, renamed into place once complete and synced) and
// returns it with the digests the release metadata needs.
func WriteBundle(out string, s Slot) (*Bundle, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("update bundle: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".partial")
	os.Remove(tmp)
	m, digest, err := bundle.WriteFile(tmp, bundle.Manifest{
		Version: s.Version, RootHash: s.RootHash, VerityUUID: s.VerityUUID, SourceDateEpoch: s.SourceDateEpoch,
	}, []bundle.Source{{Name: bundle.PartRoot, Path: s.Root}, {Name: bundle.PartVerity, Path: s.Verity}, {Name: bundle.PartUKI, Path: s.UKI}})
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	sum, size, err := hashFile(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return &Bundle{Path: out, Manifest: *m, ManifestSHA256: digest, SHA256: sum, Size: size}, nil
}

// Target is the TUF targets entry of b: its file name, length, sha256 and
// the custom fields the appliance reads (version, manifest digest, root
// hash).
func (b *Bundle) Target() trust.Target {
	return trust.Target{
		Name: filepath.Base(b.Path), Length: b.Size, SHA256: b.SHA256,
		Custom: trust.Custom{Version: b.Manifest.Version, ManifestSHA256: b.ManifestSHA256, RootHash: b.Manifest.RootHash},
	}
}

// Publish lists b in the repository (replacing an entry of the same name)
// and re-signs targets, snapshot and timestamp.
func Publish(repo *trust.Repo, b *Bundle) error {
	if err := repo.AddTarget(b.Target()); err != nil {
		return fmt.Errorf("listing %s in the update repository %s: %w", filepath.Base(b.Path), repo.Dir, err)
	}
	return nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
