// Package identity keeps the connector's runtime identity under
// PAM_AGENT_DATA_DIR: its private key (generated on the connector, never
// sent anywhere), the client certificate the control plane issued, the
// control plane's CA bundle and the connector ID.
//
// The whole identity is one file, identity.json (mode 0600), replaced
// atomically (temp file, fsync, rename, fsync of the directory), so a
// crash at any instant leaves the complete old or the complete new
// identity, never a mix. Load checks a checksum, that the key matches the
// certificate and that the certificate is valid now, each failure with its
// own sentinel error. Mem is an in-memory Store for tests.
//
// An enrolment in progress is kept beside it (enrolment.json, Pending):
// the key and the finish request, stored before the control plane is
// asked to finish, so a crash never burns the token.
//
// The package also tells the runtime mode from the data directory's file
// system (DetectMode): durable → autonomous restart, tmpfs/ramfs → guided
// recovery.
package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// Errors from Load and Check; callers branch on them with errors.Is.
var (
	ErrNotFound    = errors.New("no identity stored")
	ErrCorrupt     = errors.New("identity file is corrupted")
	ErrKeyMismatch = errors.New("private key does not match the certificate")
	ErrExpired     = errors.New("certificate has expired")
	ErrNotYetValid = errors.New("certificate is not valid yet")
)

// Identity is what enrolment produced. Treat it as immutable once built.
type Identity struct {
	ConnectorID  string
	ControlPlane string // URL the identity was issued by
	Key          *ecdsa.PrivateKey
	// Chain is the client certificate chain, leaf first.
	Chain []*x509.Certificate
	// CAPEM is the control plane's CA bundle (PEM).
	CAPEM []byte
}

// Leaf returns the client certificate.
func (id *Identity) Leaf() *x509.Certificate { return id.Chain[0] }

// TLSCertificate returns the identity as a tls.Certificate for mTLS.
func (id *Identity) TLSCertificate() *tls.Certificate {
	c := &tls.Certificate{PrivateKey: id.Key, Leaf: id.Chain[0]}
	for _, x := range id.Chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// CAPool returns the CA bundle as a pool, nil if it holds no certificate.
func (id *Identity) CAPool() *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(id.CAPEM) {
		return nil
	}
	return p
}

// Check verifies the key matches the leaf, the leaf names ConnectorID, and
// the leaf is valid at now.
func (id *Identity) Check(now time.Time) error {
	if id.Key == nil || len(id.Chain) == 0 {
		return fmt.Errorf("%w: key or certificate missing", ErrCorrupt)
	}
	leaf := id.Chain[0]
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&id.Key.PublicKey) {
		return ErrKeyMismatch
	}
	if cid, err := protocol.ConnectorIDFromURIs(leaf.URIs); err != nil || cid != id.ConnectorID {
		return fmt.Errorf("%w: certificate is not for connector %s", ErrCorrupt, id.ConnectorID)
	}
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("%w (on %s)", ErrExpired, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("%w (from %s; check the clock)", ErrNotYetValid, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// New builds an identity from an enrolment result and the key that signed
// its CSR.
func New(key *ecdsa.PrivateKey, connectorID, controlPlane string, certPEM, caPEM []byte) (*Identity, error) {
	chain, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("issued certificate: %w", err)
	}
	return &Identity{ConnectorID: connectorID, ControlPlane: controlPlane, Key: key, Chain: chain, CAPEM: bytes.Clone(caPEM)}, nil
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// Store persists one identity. Implementations are safe for concurrent use.
type Store interface {
	// Load returns the stored identity after Check at the store's clock.
	// ErrNotFound: nothing stored; ErrCorrupt: unreadable (identity nil);
	// ErrKeyMismatch, ErrExpired, ErrNotYetValid: the identity is
	// returned along with the error so callers can name the connector.
	Load() (*Identity, error)
	// Save replaces the stored identity as one unit.
	Save(*Identity) error
	// SavePending stores an enrolment about to be finished, replacing any
	// other; LoadPending returns it (ErrNotFound: none; ErrCorrupt:
	// unreadable); RemovePending deletes it once its identity is saved or
	// the enrolment is over.
	SavePending(*Pending) error
	LoadPending() (*Pending, error)
	RemovePending() error
}
