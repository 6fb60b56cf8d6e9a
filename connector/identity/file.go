package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vaultpam/appliance/connector/atomicfile"
)

// FileName is the identity's file inside the data directory.
const FileName = "identity.json"

// Dir is the Store in a data directory.
type Dir struct {
	// Path is the data directory (PAM_AGENT_DATA_DIR).
	Path string
	// Now is the clock Load checks validity with; nil means time.Now.
	Now func() time.Time
	// BeforeStep, when set, runs before each step of Save's atomic write;
	// an error aborts Save there. Tests use it to fail or kill the process
	// at every step.
	BeforeStep func(atomicfile.Step) error

	mu sync.Mutex
}

// fileFormat is identity.json. Sum is the SHA-256 of the other fields as
// encoded with Sum empty, so a damaged file is told apart from a
// mismatched key.
type fileFormat struct {
	Version      int    `json:"version"`
	ConnectorID  string `json:"connector_id"`
	ControlPlane string `json:"control_plane"`
	KeyPEM       string `json:"key_pem"`
	CertPEM      string `json:"cert_pem"`
	CAPEM        string `json:"ca_pem"`
	Sum          string `json:"sha256,omitempty"`
}

func (f fileFormat) sum() string {
	f.Sum = ""
	b, _ := json.Marshal(f)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (d *Dir) file() string { return filepath.Join(d.Path, FileName) }

func (d *Dir) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Load implements Store.
func (d *Dir) Load() (*Identity, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := os.ReadFile(d.file())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading identity: %w", err)
	}
	id, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, d.file(), err)
	}
	if err := id.Check(d.now()); err != nil {
		return id, err
	}
	return id, nil
}

func decode(b []byte) (*Identity, error) {
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, errors.New("not valid JSON")
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("unknown format version %d", f.Version)
	}
	if f.Sum != f.sum() {
		return nil, errors.New("checksum does not match")
	}
	kb, _ := pem.Decode([]byte(f.KeyPEM))
	if kb == nil {
		return nil, errors.New("no private key")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %v", err)
	}
	return New(key, f.ConnectorID, f.ControlPlane, []byte(f.CertPEM), []byte(f.CAPEM))
}

func encode(id *Identity) ([]byte, error) {
	kder, err := x509.MarshalECPrivateKey(id.Key)
	if err != nil {
		return nil, err
	}
	var cert strings.Builder
	for _, c := range id.Chain {
		cert.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	f := fileFormat{Version: 1, ConnectorID: id.ConnectorID, ControlPlane: id.ControlPlane,
		KeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), CertPEM: cert.String(), CAPEM: string(id.CAPEM)}
	f.Sum = f.sum()
	b, err := json.MarshalIndent(f, "", "  ")
	return append(b, '\n'), err
}

// Save implements Store: temp file (0600) in the same directory, write,
// fsync, close, rename over identity.json, fsync the directory. An
// unreadable identity.json it replaces is kept as identity.json.corrupt.
func (d *Dir) Save(id *Identity) error {
	if id == nil || id.Key == nil || len(id.Chain) == 0 {
		return errors.New("saving identity: incomplete identity")
	}
	data, err := encode(id)
	if err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	d.removeStaleTemps()
	if old, err := os.ReadFile(d.file()); err == nil {
		if _, err := decode(old); err != nil {
			os.Remove(d.file() + ".corrupt")
			os.Link(d.file(), d.file()+".corrupt")
		}
	}
	if err := atomicfile.Write(d.file(), data, atomicfile.Options{Perm: 0o600, BeforeStep: d.BeforeStep}); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	return nil
}

// removeStaleTemps deletes temp files a crashed Save left behind.
func (d *Dir) removeStaleTemps() { atomicfile.RemoveTemps(d.file()) }
