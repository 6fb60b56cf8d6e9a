// Package bundle is the update bundle format: one file that carries a root
// slot of the appliance — the UKI, the squashfs root and its dm-verity hash
// tree — and a manifest that names the version, the root hash and the size
// and SHA-256 of each part.
//
// The file is a plain tar (readable with `tar tvf` by people and with
// archive/tar by programs), written deterministically:
//
//	manifest.json    the Manifest, first, at most MaxManifest bytes
//	root.squashfs    PartRoot
//	root.verity      PartVerity
//	uki.efi          PartUKI
//
// in that order, regular files only, nothing after the last part. The
// manifest is authenticated by its SHA-256, which the signed update
// metadata carries (package trust); each part is then checked against the
// manifest while it streams. A Reader never hands out a byte of a part
// whose size is wrong, and reports a digest mismatch at the part's end,
// before the caller marks anything bootable.
package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/vaultpam/appliance/update/version"
)

// Format is the bundle format version this package writes and reads.
const Format = 1

// Compatible names the product and architecture a bundle is for; a bundle
// for anything else is refused.
const Compatible = "vaultpam-connector/x86_64"

// The parts, in file order.
const (
	ManifestName = "manifest.json"
	PartRoot     = "root.squashfs"
	PartVerity   = "root.verity"
	PartUKI      = "uki.efi"
)

// PartOrder is the order of the parts in a bundle.
var PartOrder = []string{PartRoot, PartVerity, PartUKI}

// MaxManifest bounds manifest.json.
const MaxManifest = 64 << 10

// Manifest describes a bundle.
type Manifest struct {
	Format     int    `json:"format"`
	Compatible string `json:"compatible"`
	// Version is the image version, x.y.z.
	Version string `json:"version"`
	// RootHash is the dm-verity root hash of root.squashfs with
	// root.verity, as the UKI's command line carries it.
	RootHash string `json:"root_hash"`
	// VerityUUID is the UUID in root.verity's superblock; the UKI's command
	// line names it so the initramfs finds the slot it was written to.
	VerityUUID string `json:"verity_uuid"`
	// SourceDateEpoch is the build's SOURCE_DATE_EPOCH.
	SourceDateEpoch int64 `json:"source_date_epoch"`
	// Parts lists root.squashfs, root.verity and uki.efi, in that order.
	Parts []Part `json:"parts"`
}

// Part is one file of the bundle.
type Part struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// Part returns the part called name.
func (m *Manifest) Part(name string) (Part, bool) {
	for _, p := range m.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

var (
	hexRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// maxPart bounds a part's size (a root slot is far smaller).
const maxPart = 4 << 30

// Validate reports every problem with m, joined.
func (m *Manifest) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.Format != Format {
		add("bundle format %d: this appliance reads format %d", m.Format, Format)
	}
	if m.Compatible != Compatible {
		add("bundle is for %q, not for %q", m.Compatible, Compatible)
	}
	if _, err := version.Parse(m.Version); err != nil {
		add("bundle version: %v", err)
	}
	if !hexRE.MatchString(m.RootHash) {
		add("root hash %q is not 64 lower-case hex digits", m.RootHash)
	}
	if !uuidRE.MatchString(strings.ToLower(m.VerityUUID)) {
		add("verity UUID %q is not a UUID", m.VerityUUID)
	}
	if len(m.Parts) != len(PartOrder) {
		add("bundle has %d parts, want %d (%s)", len(m.Parts), len(PartOrder), strings.Join(PartOrder, ", "))
	} else {
		for i, p := range m.Parts {
			if p.Name != PartOrder[i] {
				add("part %d is %q, want %q", i+1, p.Name, PartOrder[i])
			}
			if p.Size <= 0 || p.Size > maxPart {
				add("part %s: size %d is out of range", p.Name, p.Size)
			}
			if !hexRE.MatchString(p.SHA256) {
				add("part %s: sha256 %q is not 64 lower-case hex digits", p.Name, p.SHA256)
			}
		}
	}
	return errors.Join(errs...)
}

// Encode returns the manifest's bytes as they go into the bundle.
func (m *Manifest) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Digest is the SHA-256 of b in lower-case hex.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
