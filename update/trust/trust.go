// Package trust decides whether an update may be installed, with The
// Update Framework (TUF, through go-tuf/v2): the release keys sign root,
// targets, snapshot and timestamp metadata; the appliance carries the
// first root, walks the chain of newer roots it is shown (key rotation
// without a redeploy), refuses expired metadata (a frozen or replayed
// offer) and metadata older than what it has seen before (rollback), and
// reads the target's length, digest and custom fields — the version and
// the bundle manifest's digest — from metadata it verified.
//
// Repo is the release side (make ova). Verifier is the appliance side: it
// works on a directory of metadata files (downloaded by the connector, or
// on the update CD-ROM) and never touches the network.
//
// The repository layout (consistent snapshots off):
//
//	1.root.json … N.root.json   every root version, each signed by its own
//	                            keys and by the previous root's
//	root.json                   the newest root (what an image bakes in)
//	targets.json snapshot.json timestamp.json
package trust

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Custom is what a bundle's targets entry carries besides its length and
// digest.
type Custom struct {
	// Version is the image version in the bundle (x.y.z).
	Version string `json:"version"`
	// ManifestSHA256 authenticates the bundle's manifest.json, so the
	// bundle's parts can be checked while they stream into a slot.
	ManifestSHA256 string `json:"manifest_sha256"`
	// RootHash is the bundle's dm-verity root hash (for display and logs).
	RootHash string `json:"root_hash,omitempty"`
}

// Target is a verified targets entry.
type Target struct {
	Name   string
	Length int64
	SHA256 string // lower-case hex
	Custom Custom
}

// Errors callers branch on (errors.Is). Each wraps the TUF error.
var (
	// ErrExpired: the metadata has expired (a frozen offer, an old update
	// medium, or this machine's clock is wrong).
	ErrExpired = errors.New("update metadata has expired")
	// ErrRollback: the metadata is older than metadata this appliance has
	// already seen (a replayed offer).
	ErrRollback = errors.New("update metadata is older than what this appliance has seen")
	// ErrUntrusted: the metadata is not signed by the keys this appliance
	// trusts (an unknown key, or tampered metadata).
	ErrUntrusted = errors.New("update metadata is not signed by a trusted key")
	// ErrNoTarget: the metadata lists no such update.
	ErrNoTarget = errors.New("the signed update metadata does not list this update")
)

// classify maps go-tuf's errors to ours.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var (
		expired  *metadata.ErrExpiredMetadata
		version  *metadata.ErrBadVersionNumber
		unsigned *metadata.ErrUnsignedMetadata
	)
	switch {
	case errors.As(err, &expired):
		return fmt.Errorf("%w: %v", ErrExpired, err)
	case errors.As(err, &version):
		return fmt.Errorf("%w: %v", ErrRollback, err)
	case errors.As(err, &unsigned):
		return fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	return err
}

func decodeCustom(tf *metadata.TargetFiles) (Custom, error) {
	var c Custom
	if tf.Custom == nil {
		return c, errors.New("targets entry has no custom fields (version, manifest digest)")
	}
	if err := json.Unmarshal(*tf.Custom, &c); err != nil {
		return c, fmt.Errorf("targets entry custom fields: %w", err)
	}
	if c.Version == "" || c.ManifestSHA256 == "" {
		return c, errors.New("targets entry lacks the version or the manifest digest")
	}
	return c, nil
}
