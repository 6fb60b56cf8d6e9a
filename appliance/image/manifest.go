package image

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Manifest is build/image.json: what the disk holds, for tests, the Packer
// builder, the OVA writer and the SBOM.
type Manifest struct {
	Version         string   `json:"version"`
	SourceDateEpoch int64    `json:"source_date_epoch"`
	RootHash        string   `json:"root_hash"`   // dm-verity root hash of slot A
	VerityUUID      string   `json:"verity_uuid"` // UUID in slot A's verity superblock (the UKI's vaultpam.verity=)
	RootSHA256      string   `json:"root_sha256"` // sha256 of the squashfs image in slot A
	RootSize        int64    `json:"root_size"`   // bytes of the squashfs image (= verity data)
	Cmdline         string   `json:"cmdline"`     // kernel command line in the slot A UKI
	UKI             string   `json:"uki"`         // path of the slot A UKI on the ESP
	DiskSHA256      string   `json:"disk_sha256"`
	PackagesKey     string   `json:"packages_key"`
	Binaries        []string `json:"binaries"` // our programs installed in /usr/bin
	// UpdateRoot is the sha256 of the TUF root baked in as
	// /usr/share/vaultpam/update/root.json; "" when the image has none.
	UpdateRoot string `json:"update_root_sha256"`
	// Slot names the files beside image.json that make up slot A, what an
	// update bundle carries (update/bundle).
	Slot SlotFiles `json:"slot"`
	Layout
}

// SlotFiles are the parts of a root slot as files, relative to image.json's
// directory.
type SlotFiles struct {
	Root   string `json:"root"`   // the squashfs root (VPAM-ROOT-A)
	Verity string `json:"verity"` // its dm-verity hash tree (VPAM-VERITY-A)
	UKI    string `json:"uki"`    // the UKI whose command line names both
}

// Paths returns the slot's files under dir (image.json's directory).
func (s SlotFiles) Paths(dir string) (root, verity, uki string) {
	return filepath.Join(dir, s.Root), filepath.Join(dir, s.Verity), filepath.Join(dir, s.UKI)
}

// ReadManifest loads an image.json.
func ReadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return &m, nil
}

// Partition returns the partition with the label.
func (m *Manifest) Partition(label string) (Partition, bool) {
	for _, p := range m.Partitions {
		if p.Label == label {
			return p, true
		}
	}
	return Partition{}, false
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
