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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
	"github.com/vaultpam/appliance/connector/atomicfile"
)

// Verifier checks update metadata on the appliance.
type Verifier struct {
	// BakedRoot is the root the image carries
	// (/usr/share/vaultpam/update/root.json): the only anchor. Nothing on
	// /data is trusted by itself.
	BakedRoot []byte
	// StateDir keeps the metadata this appliance has trusted so far
	// (/data/update/tuf): the newer roots as N.root.json (walked from the
	// baked root at every check, each signed by the previous one, so a key
	// the release rotated out stays out even when an offer omits the
	// chain) and timestamp, snapshot and targets (verified against that
	// root; their versions never go back). A file planted there is not an
	// anchor: it verifies from the baked root or is ignored. Without
	// StateDir (guided recovery, /data on tmpfs) rollback protection
	// restarts from the baked root at every boot.
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
	if err := checkStateDir(v.StateDir); err != nil {
		return nil, err
	}
	if _, err := rootVersion(v.BakedRoot); err != nil {
		return nil, fmt.Errorf("the image's update root: %w", err)
	}
	cfg, err := config.New(localURL, v.BakedRoot)
	if err != nil {
		return nil, err
	}
	fetch := &dirFetcher{dir: dir, chain: v.StateDir, roots: map[int64][]byte{}}
	cfg.Fetcher = fetch
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
	// Keep every root walked through, so the next check walks from the
	// baked root even when its offer carries no chain.
	trusted := up.GetTrustedMetadataSet().Root.Signed.Version
	for n, b := range fetch.roots {
		if n <= trusted {
			if err := atomicfile.Write(filepath.Join(v.StateDir, chainName(n)), b, atomicfile.Options{Perm: 0o644}); err != nil {
				return nil, fmt.Errorf("update trust state: %w", err)
			}
		}
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

func rootVersion(b []byte) (int64, error) {
	var zero metadata.Metadata[metadata.RootType]
	m, err := zero.FromBytes(b)
	if err != nil {
		return 0, err
	}
	return m.Signed.Version, nil
}

// chainName is the file a root version is kept in, in StateDir and in an
// offer's directory.
func chainName(n int64) string { return strconv.FormatInt(n, 10) + ".root.json" }

// RootVersion returns the version of the newest root this appliance
// trusts, for the status: the baked root, then each kept N.root.json
// that the one before it signed. A root that does not verify ends the
// walk.
func (v *Verifier) RootVersion() int64 {
	tm, err := trustedmetadata.New(v.BakedRoot)
	if err != nil {
		return 0
	}
	if checkStateDir(v.StateDir) != nil {
		return tm.Root.Signed.Version
	}
	f := &dirFetcher{chain: v.StateDir}
	for {
		b, err := f.chainRoot(tm.Root.Signed.Version + 1)
		if err != nil {
			break
		}
		if _, err := tm.UpdateRoot(b); err != nil {
			break
		}
	}
	return tm.Root.Signed.Version
}

// checkStateDir refuses a StateDir that is a symbolic link or that
// belongs to another user (someone else could have planted metadata in
// it). A missing one is created 0700.
func checkStateDir(dir string) error {
	if dir == "" {
		return errors.New("update trust state: no directory")
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("update trust state: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("update trust state: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("update trust state: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || st == nil || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("update trust state %s is not a directory of this user (uid %d): refusing it (hint: move it aside; the updater starts again from the image's root)", dir, os.Geteuid())
	}
	return nil
}

// dirFetcher reads metadata files from a directory. A missing file is an
// HTTP 404 to go-tuf: that is how it learns there is no newer root. A
// root N.root.json the directory lacks comes from chain (the roots this
// appliance walked before); roots remembers every root handed out.
type dirFetcher struct {
	dir   string
	chain string
	roots map[int64][]byte
}

func (f *dirFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	name := strings.TrimPrefix(urlPath, localURL)
	if name == urlPath || name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("update metadata: refusing the path %q", urlPath)
	}
	b, err := readMetadata(filepath.Join(f.dir, name), maxLength)
	if errors.Is(err, fs.ErrNotExist) {
		if n, ok := rootNumber(name); ok && f.chain != "" {
			if b, err = f.chainRoot(n); err == nil {
				f.roots[n] = b
				return b, nil
			}
		}
		return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: urlPath}
	}
	if err != nil {
		return nil, fmt.Errorf("update metadata %s: %w", name, err)
	}
	if n, ok := rootNumber(name); ok && f.roots != nil {
		f.roots[n] = b
	}
	return b, nil
}

// rootNumber returns N for "N.root.json".
func rootNumber(name string) (int64, bool) {
	s, ok := strings.CutSuffix(name, ".root.json")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// chainRoot returns the kept root version n: N.root.json in the chain
// directory, else its root.json when that is version n (appliances that
// walked a rotation before the chain was kept). Whatever it returns is
// verified by the caller against the root before it.
func (f *dirFetcher) chainRoot(n int64) ([]byte, error) {
	b, err := readMetadata(filepath.Join(f.chain, chainName(n)), 512<<10)
	if err == nil {
		return b, nil
	}
	b, err2 := readMetadata(filepath.Join(f.chain, "root.json"), 512<<10)
	if err2 == nil {
		if v, err3 := rootVersion(b); err3 == nil && v == n {
			return b, nil
		}
	}
	return nil, err
}

// readMetadata reads one metadata file: a regular file (not a symbolic
// link, FIFO or device) of at most maxLength bytes.
func readMetadata(path string, maxLength int64) ([]byte, error) {
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if maxLength > 0 && st.Size() > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is %d bytes, more than %d", path, st.Size(), maxLength)}
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
