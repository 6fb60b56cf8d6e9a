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
)

// FileName is the identity's file inside the data directory.
const FileName = "identity.json"

// Step names a point in Dir.Save, for fault injection.
type Step int

// The steps of Save, in order.
const (
	StepCreateTemp Step = iota
	StepWriteHalf       // first half of the bytes
	StepWriteRest
	StepSync
	StepClose
	StepRename
	StepSyncDir
	NumSteps
)

var stepNames = [...]string{"create-temp", "write-half", "write-rest", "fsync", "close", "rename", "fsync-dir"}

func (s Step) String() string {
	if s >= 0 && int(s) < len(stepNames) {
		return stepNames[s]
	}
	return fmt.Sprintf("step(%d)", int(s))
}

// Dir is the Store in a data directory.
type Dir struct {
	// Path is the data directory (PAM_AGENT_DATA_DIR).
	Path string
	// Now is the clock Load checks validity with; nil means time.Now.
	Now func() time.Time
	// BeforeStep, when set, runs before each step of Save; an error aborts
	// Save there. Tests use it to fail or kill the process at every step.
	BeforeStep func(Step) error

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
	step := func(s Step) error {
		if d.BeforeStep != nil {
			if err := d.BeforeStep(s); err != nil {
				return fmt.Errorf("saving identity at %s: %w", s, err)
			}
		}
		return nil
	}
	if err := step(StepCreateTemp); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.Path, "."+FileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	half := len(data) / 2
	for _, part := range []struct {
		s Step
		b []byte
	}{{StepWriteHalf, data[:half]}, {StepWriteRest, data[half:]}} {
		if err := step(part.s); err != nil {
			return err
		}
		if _, err := f.Write(part.b); err != nil {
			return fmt.Errorf("saving identity: %w", err)
		}
	}
	if err := step(StepSync); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("saving identity: fsync: %w", err)
	}
	if err := step(StepClose); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	if err := step(StepRename); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.file()); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	ok = true
	if err := step(StepSyncDir); err != nil {
		return err
	}
	dir, err := os.Open(d.Path)
	if err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("saving identity: fsync of %s: %w", d.Path, err)
	}
	return nil
}

// removeStaleTemps deletes temp files a crashed Save left behind.
func (d *Dir) removeStaleTemps() {
	m, _ := filepath.Glob(filepath.Join(d.Path, "."+FileName+".tmp-*"))
	for _, p := range m {
		os.Remove(p)
	}
}
