package trust

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// Verifier checks update metadata on the appliance.
type Verifier struct {
	// BakedRoot is the root the image carries
	// (/usr/share/vaultpam/update/root.json): the anchor on first use.
	BakedRoot []byte
	// StateDir keeps the metadata this appliance has trusted so far
	// (/data/update/tuf). Its root, when newer than the baked one, is the
	// anchor: a key the release rotated out stays out, and the versions of
	// timestamp, snapshot and targets never go back. Without it (guided
	// recovery, /data on tmpfs) rollback protection restarts from the
	// baked root at every boot.
	StateDir string
	// Now is the clock expiry is judged by; nil means time.Now.
	Now func() time.Time
}

// localURL is the pseudo URL the fetcher maps back to the metadata
// directory.
const localURL = "local:///"

// Target verifies the metadata in dir (1.root.json … N.root.json,
// timestamp.json, snapshot.json, targets.json) and returns the entry for
// name. Nothing is read from the network. On success StateDir holds the
// newly trusted metadata, synced to disk. Errors wrap ErrExpired,
// ErrRollback, ErrUntrusted or ErrNoTarget where they apply.
func (v *Verifier) Target(dir, name string) (*Target, error) {
	if err := os.MkdirAll(v.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("update trust state: %w", err)
	}
	anchor, err := v.anchor()
	if err != nil {
		return nil, err
	}
	cfg, err := config.New(localURL, anchor)
	if err != nil {
		return nil, err
	}
	cfg.Fetcher = dirFetcher{dir: dir}
	cfg.LocalMetadataDir = v.StateDir
	cfg.LocalTargetsDir = filepath.Join(v.StateDir, "targets")
	cfg.PrefixTargetsWithHash = false
	up, err := updater.New(cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("loading the trusted update root: %w", err))
	}
	if v.Now != nil {
		up.UnsafeSetRefTime(v.Now())
	}
	if err := up.Refresh(); err != nil {
		return nil, classify(err)
	}
	syncDir(v.StateDir)
	tf, err := up.GetTargetInfo(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s (%v)", ErrNoTarget, name, err)
	}
	sum, ok := tf.Hashes["sha256"]
	if !ok {
		return nil, fmt.Errorf("targets entry %s has no sha256", name)
	}
	c, err := decodeCustom(tf)
	if err != nil {
		return nil, fmt.Errorf("targets entry %s: %w", name, err)
	}
	return &Target{Name: name, Length: tf.Length, SHA256: hex.EncodeToString(sum), Custom: c}, nil
}

// anchor returns the root to start from: the persisted one when it is at
// least as new as the baked one, else the baked one.
func (v *Verifier) anchor() ([]byte, error) {
	baked, err := rootVersion(v.BakedRoot)
	if err != nil {
		return nil, fmt.Errorf("the image's update root: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(v.StateDir, "root.json"))
	if err != nil {
		return v.BakedRoot, nil
	}
	if n, err := rootVersion(b); err == nil && n >= baked {
		return b, nil
	}
	return v.BakedRoot, nil
}

func rootVersion(b []byte) (int64, error) {
	var zero metadata.Metadata[metadata.RootType]
	m, err := zero.FromBytes(b)
	if err != nil {
		return 0, err
	}
	return m.Signed.Version, nil
}

// RootVersion returns the version of the root this verifier currently
// anchors on, for the status.
func (v *Verifier) RootVersion() int64 {
	b, err := v.anchor()
	if err != nil {
		return 0
	}
	n, _ := rootVersion(b)
	return n
}

// dirFetcher reads metadata files from a directory. A missing file is an
// HTTP 404 to go-tuf: that is how it learns there is no newer root.
type dirFetcher struct{ dir string }

func (f dirFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	name := strings.TrimPrefix(urlPath, localURL)
	if name == urlPath || name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("update metadata: refusing the path %q", urlPath)
	}
	fh, err := os.OpenFile(filepath.Join(f.dir, name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: urlPath}
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("update metadata %s is not a regular file", name)
	}
	if maxLength > 0 && st.Size() > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is %d bytes, more than %d", name, st.Size(), maxLength)}
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxLength+1))
	if err != nil {
		return nil, err
	}
	return b, nil
}

func syncDir(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			if f, err := os.Open(p); err == nil {
				f.Sync()
				f.Close()
			}
		}
		return nil
	})
}
