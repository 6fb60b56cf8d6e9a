package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// UpdateRootPath is where the image carries the TUF root of the release
// repository: the trust anchor the appliance's updater starts from
// (update/README.md).
const UpdateRootPath = "usr/share/vaultpam/update/root.json"

// installUpdateRoot copies the TUF root o.UpdateRoot into the tree at
// UpdateRootPath and records its sha256. Without one the image carries no
// update root and its updater refuses every update; that is logged.
func installUpdateRoot(o Options, tree string, res *Result) error {
	if o.UpdateRoot == "" {
		o.logf("rootfs: warning: no update root given; this image will refuse every update (hint: make ova creates dist/update-repo/root.json)")
		return nil
	}
	data, err := os.ReadFile(o.UpdateRoot)
	if err != nil {
		return fmt.Errorf("reading the update root: %w (hint: vaultpam-sign update-init creates the release repository)", err)
	}
	if err := checkUpdateRoot(data); err != nil {
		return fmt.Errorf("update root %s: %w", o.UpdateRoot, err)
	}
	dst := filepath.Join(tree, UpdateRootPath)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.Remove(dst)
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	res.UpdateRootSHA256 = hex.EncodeToString(sum[:])
	o.logf("rootfs: update root %s (sha256 %s) baked in as /%s", o.UpdateRoot, res.UpdateRootSHA256[:12], UpdateRootPath)
	return nil
}

// checkUpdateRoot makes sure data looks like signed TUF root metadata. The
// signatures are checked by the appliance (update/trust); this only stops a
// wrong file (targets.json, a key, an empty file) from being baked in.
func checkUpdateRoot(data []byte) error {
	var m struct {
		Signatures []json.RawMessage `json:"signatures"`
		Signed     struct {
			Type    string                     `json:"_type"`
			Version int64                      `json:"version"`
			Keys    map[string]json.RawMessage `json:"keys"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("not TUF metadata: %w", err)
	}
	switch {
	case m.Signed.Type != "root":
		return fmt.Errorf("TUF metadata of type %q, want a root (root.json of the release repository)", m.Signed.Type)
	case m.Signed.Version < 1 || len(m.Signed.Keys) == 0 || len(m.Signatures) == 0:
		return fmt.Errorf("TUF root without a version, keys or signatures")
	}
	return nil
}
