package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vaultpam/appliance/connector/atomicfile"
	"github.com/vaultpam/appliance/connector/localapi"
)

// Connector statuses in the registry (as `vaultpam-lab connectors --json` shows them).
const (
	StatusPending       = "pending"        // enrolled, never connected yet
	StatusOnline        = "online"         // tunnel up, heartbeats arriving
	StatusOffline       = "offline"        // heartbeats stopped or tunnel lost
	StatusNeedsRecovery = "needs_recovery" // connector reported its identity lost
	StatusRevoked       = "revoked"        // certificates revoked by an operator
)

// Connector is one registry entry, as `vaultpam-lab connectors --json`
// prints it.
type Connector struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Status        string    `json:"status"`
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	StatusReason  string    `json:"status_reason,omitempty"`
	EnrolledAt    time.Time `json:"enrolled_at"`
	// Version is the running version: the appliance image's version, or
	// the connector's own where it runs in another shape.
	Version string `json:"version,omitempty"`
	// Serials of every certificate issued to it (hex); Revoked lists the
	// ones no longer accepted.
	Serials []string `json:"serials,omitempty"`
	Revoked []string `json:"revoked,omitempty"`
	// Update is the connector's latest image update, as it reported it.
	Update *UpdateInfo `json:"update,omitempty"`
	// ClockOffset is the connector's last estimate of this control plane's
	// clock minus its own ("2m3s": the connector is behind).
	ClockOffset *localapi.Duration `json:"clock_offset,omitempty"`
}

// Resource names a target and the connector that reaches it.
type Resource struct {
	Name      string `json:"name"`
	Address   string `json:"address"` // host:port as the connector dials it
	Connector string `json:"connector"`
}

// tokenRecord is a token as stored: only its SHA-256, never the token.
type tokenRecord struct {
	Hash      string    `json:"hash"`               // hex SHA-256 of the canonical token
	Name      string    `json:"name"`               // connector name for enrolment tokens
	Recovery  string    `json:"recovery,omitempty"` // connector ID for recovery tokens
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	UsedAt    time.Time `json:"used_at,omitzero"`
	// What the consuming enrolment got, so the same request can be
	// answered again after a lost response.
	Challenge   string `json:"challenge,omitempty"`
	PubKeyHash  string `json:"pubkey_hash,omitempty"`
	ConnectorID string `json:"connector_id,omitempty"`
	CertPEM     string `json:"cert_pem,omitempty"`
}

// state is everything the lab persists in state.json.
type state struct {
	Tokens     []*tokenRecord `json:"tokens"`
	Connectors []*Connector   `json:"connectors"`
	Resources  []*Resource    `json:"resources"`
	Offers     []*Offer       `json:"offers,omitempty"`
}

func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return &state{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading lab state: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading lab state %s: %w", filepath.Join(dir, "state.json"), err)
	}
	return &s, nil
}

func (s *state) save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "state.json"), append(b, '\n'), 0o600)
}

func (s *state) connector(id string) *Connector {
	for _, c := range s.Connectors {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (s *state) token(hash string) *tokenRecord {
	for _, t := range s.Tokens {
		if t.Hash == hash {
			return t
		}
	}
	return nil
}
