package identity

import (
	"crypto/ecdsa"
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
	"time"

	"github.com/vaultpam/appliance/connector/atomicfile"
)

// Pending is an enrolment between the control plane's challenge and the
// stored identity: the key (generated here, never sent) and the exact
// finish request. It is stored before the control plane is asked to
// finish, so after a crash at any point the connector sends the same
// request again (the control plane answers it again, idempotently, with
// the same certificate) instead of presenting the token a second time —
// which would find it used, leaving the connector without identity and an
// orphan at the control plane.
type Pending struct {
	ControlPlane string
	ChallengeID  string
	Key          *ecdsa.PrivateKey
	CSR          []byte // DER
	Signature    []byte // over protocol.ChallengeDigest(nonce, CSR)
	// ExpiresAt is when the control plane forgets the challenge if the
	// finish request never reached it (the token is then still unused).
	ExpiresAt time.Time
	// Recovery and ConnectorID: a recovery token re-binding ConnectorID.
	Recovery    bool
	ConnectorID string
	CreatedAt   time.Time
}

// PendingFileName is the pending enrolment's file in the data directory.
const PendingFileName = "enrolment.json"

type pendingFile struct {
	Version      int       `json:"version"`
	ControlPlane string    `json:"control_plane"`
	ChallengeID  string    `json:"challenge_id"`
	KeyPEM       string    `json:"key_pem"`
	CSR          []byte    `json:"csr"`
	Signature    []byte    `json:"signature"`
	ExpiresAt    time.Time `json:"expires_at"`
	Recovery     bool      `json:"recovery,omitempty"`
	ConnectorID  string    `json:"connector_id,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	Sum          string    `json:"sha256,omitempty"`
}

func (f pendingFile) sum() string {
	f.Sum = ""
	b, _ := json.Marshal(f)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func encodePending(p *Pending) ([]byte, error) {
	if p == nil || p.Key == nil || p.ChallengeID == "" || len(p.CSR) == 0 {
		return nil, errors.New("incomplete pending enrolment")
	}
	kder, err := x509.MarshalECPrivateKey(p.Key)
	if err != nil {
		return nil, err
	}
	f := pendingFile{Version: 1, ControlPlane: p.ControlPlane, ChallengeID: p.ChallengeID,
		KeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), CSR: p.CSR, Signature: p.Signature,
		ExpiresAt: p.ExpiresAt.UTC(), Recovery: p.Recovery, ConnectorID: p.ConnectorID, CreatedAt: p.CreatedAt.UTC()}
	f.Sum = f.sum()
	b, err := json.MarshalIndent(f, "", "  ")
	return append(b, '\n'), err
}

func decodePending(b []byte) (*Pending, error) {
	var f pendingFile
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
	csr, err := x509.ParseCertificateRequest(f.CSR)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %v", err)
	}
	if pub, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("the certificate request is not for the stored key")
	}
	return &Pending{ControlPlane: f.ControlPlane, ChallengeID: f.ChallengeID, Key: key, CSR: f.CSR, Signature: f.Signature,
		ExpiresAt: f.ExpiresAt, Recovery: f.Recovery, ConnectorID: f.ConnectorID, CreatedAt: f.CreatedAt}, nil
}

func (d *Dir) pendingFile() string { return filepath.Join(d.Path, PendingFileName) }

// SavePending implements Store: atomically, 0600, like the identity.
func (d *Dir) SavePending(p *Pending) error {
	data, err := encodePending(p)
	if err != nil {
		return fmt.Errorf("saving the pending enrolment: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return fmt.Errorf("saving the pending enrolment: %w", err)
	}
	atomicfile.RemoveTemps(d.pendingFile())
	if err := atomicfile.Write(d.pendingFile(), data, atomicfile.Options{Perm: 0o600, BeforeStep: d.BeforeStep}); err != nil {
		return fmt.Errorf("saving the pending enrolment: %w", err)
	}
	return nil
}

// LoadPending implements Store.
func (d *Dir) LoadPending() (*Pending, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := os.ReadFile(d.pendingFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading the pending enrolment: %w", err)
	}
	p, err := decodePending(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, d.pendingFile(), err)
	}
	return p, nil
}

// RemovePending implements Store; removing nothing is not an error. The
// directory is synced so the removal survives a crash.
func (d *Dir) RemovePending() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Remove(d.pendingFile()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the pending enrolment: %w", err)
	}
	if dir, err := os.Open(d.Path); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}
