package broker

import (
	"context"
	"crypto/x509"
	"errors"
	"sync"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// Connector statuses the broker reports through Registry.Update. The lab
// shows Draining as online-but-not-routable; the others map to its
// connector records' status field.
const (
	StatusOnline   = "online"
	StatusDraining = "draining"
	StatusOffline  = "offline"
)

// Errors a Registry returns from Authorize to refuse a connector for good;
// the connector then stops retrying and goes to needs_recovery.
var (
	ErrRevoked          = errors.New("certificate revoked")
	ErrUnknownConnector = errors.New("connector unknown to this control plane")
)

// Registry is what the broker needs from the control plane's connector
// records. Implementations must be safe for concurrent use; calls are made
// from the tunnel's goroutines and must not block for long.
type Registry interface {
	// Authorize is called once per tunnel, after TLS verified the client
	// certificate against the control plane CA, with the connector ID from
	// the certificate's URI SAN. Return nil to accept; an error wrapping
	// ErrRevoked or ErrUnknownConnector to refuse for good; any other error
	// refuses for now (the connector retries with backoff).
	Authorize(ctx context.Context, connectorID string, cert *x509.Certificate) error
	// Update records a status change or a heartbeat of a connector.
	Update(u StatusUpdate)
}

// Authority signs renewed certificates. current is the certificate the
// tunnel was opened with: the broker renews only for its key (a CSR for
// another key is refused before Renew is called) and an Authority should
// check it again. The returned chain (DER, leaf first) must bind
// connectorID in a URI SAN exactly like an enrolment certificate; the
// CSR's subject and SANs are not to be trusted.
type Authority interface {
	Renew(ctx context.Context, connectorID string, current *x509.Certificate, csr *x509.CertificateRequest) (chain [][]byte, err error)
}

// StatusUpdate is one change of a connector's status or one heartbeat.
type StatusUpdate struct {
	ConnectorID    string
	Status         string    // StatusOnline, StatusDraining, StatusOffline
	Reason         string    // why, for people (offline: "3 heartbeats missed")
	LastHeartbeat  time.Time // last heartbeat received (zero: none yet)
	Version        string
	ActiveSessions int
	CertNotAfter   time.Time
	RemoteAddr     string
	// ImageVersion is the appliance image's version the connector runs on
	// ("" elsewhere); Update its latest image update, when it reports one.
	ImageVersion string
	Update       *protocol.UpdateReport
	// ClockOffset is the connector's estimate of the control plane's clock
	// minus its own (from its heartbeat); nil when it sent none.
	ClockOffset *time.Duration
}

// MemoryRegistry is an in-memory Registry for tests: every connector is
// accepted unless Revoke or Forget says otherwise, and the last update per
// connector is kept. Its zero value is ready to use.
type MemoryRegistry struct {
	mu      sync.Mutex
	revoked map[string]bool
	unknown map[string]bool
	last    map[string]StatusUpdate
	history []StatusUpdate
}

// Revoke makes Authorize refuse id with ErrRevoked.
func (m *MemoryRegistry) Revoke(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.revoked == nil {
		m.revoked = map[string]bool{}
	}
	m.revoked[id] = true
}

// Forget makes Authorize refuse id with ErrUnknownConnector.
func (m *MemoryRegistry) Forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unknown == nil {
		m.unknown = map[string]bool{}
	}
	m.unknown[id] = true
}

// Authorize implements Registry.
func (m *MemoryRegistry) Authorize(_ context.Context, id string, _ *x509.Certificate) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.revoked[id]:
		return ErrRevoked
	case m.unknown[id]:
		return ErrUnknownConnector
	}
	return nil
}

// Update implements Registry.
func (m *MemoryRegistry) Update(u StatusUpdate) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = map[string]StatusUpdate{}
	}
	m.last[u.ConnectorID] = u
	m.history = append(m.history, u)
}

// Last returns the last update for id.
func (m *MemoryRegistry) Last(id string) (StatusUpdate, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.last[id]
	return u, ok
}

// Statuses returns the sequence of distinct statuses reported for id.
func (m *MemoryRegistry) Statuses(id string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, u := range m.history {
		if u.ConnectorID == id && (len(out) == 0 || out[len(out)-1] != u.Status) {
			out = append(out, u.Status)
		}
	}
	return out
}
