// Package localapi is the connector's local control surface: a small HTTP
// API served on a Unix socket (/run/vaultpam/connector.sock by default) that
// the console (vaultpam-console) and `vaultpam-connector status` use to read
// the connector's status and to hand it an enrolment or recovery token.
//
// The package holds both sides: Handler serves a Backend, Client talks to it.
// Tokens travel only in request bodies, never in URLs, so they cannot end up
// in access logs or proxies' histories.
package localapi

import "time"

// DefaultSocket is where the connector listens unless PAM_AGENT_SOCKET says
// otherwise.
const DefaultSocket = "/run/vaultpam/connector.sock"

// Runtime modes (seed: "Runtime Modes").
const (
	ModeAutonomousRestart = "autonomous_restart"
	ModeGuidedRecovery    = "guided_recovery"
)

// ModeLabel returns the UI text for a runtime mode.
func ModeLabel(mode string) string {
	switch mode {
	case ModeAutonomousRestart:
		return "Autonomous restart"
	case ModeGuidedRecovery:
		return "Guided recovery"
	}
	return mode
}

// Status is the connector's status as JSON, served at GET /v1/status and
// printed by `vaultpam-connector status --json`. Zero values mean "not known
// yet" (no identity, no heartbeat so far); times are UTC.
type Status struct {
	State      string `json:"state"`       // internal name (package state), e.g. "online"
	StateLabel string `json:"state_label"` // UI text, e.g. "Online"
	// Reason says why the connector is in this state, for people
	// ("certificate revoked by the control plane"); empty when online.
	Reason string `json:"reason,omitempty"`
	// Hint says what the operator does next, when there is something to do.
	Hint string `json:"hint,omitempty"`

	Mode        string `json:"mode"` // autonomous_restart or guided_recovery
	DataDir     string `json:"data_dir"`
	DataDurable bool   `json:"data_durable"`

	ConnectorID   string `json:"connector_id,omitempty"`
	ConnectorName string `json:"connector_name,omitempty"`
	ControlPlane  string `json:"control_plane,omitempty"`
	Version       string `json:"version,omitempty"`

	CertNotAfter      time.Time `json:"cert_not_after,omitzero"`
	LastHeartbeat     time.Time `json:"last_heartbeat,omitzero"`
	HeartbeatInterval Duration  `json:"heartbeat_interval,omitzero"`
	TunnelRTT         Duration  `json:"tunnel_rtt,omitzero"`
	ActiveSessions    int       `json:"active_sessions"`
	// Image is the appliance's image and update status (from the updater);
	// absent where there is no updater (containers, native packages).
	Image *Image    `json:"image,omitempty"`
	Since time.Time `json:"since,omitzero"` // when State was entered

	// AllowedTargets is the effective target policy: what sessions may
	// reach. The health screen shows Summary.
	AllowedTargets *TargetPolicy `json:"allowed_targets,omitempty"`

	// ClockOffset is the control plane's clock minus this machine's, as
	// last estimated over the tunnel (positive: this machine is behind);
	// absent before the first estimate, kept while the tunnel is down.
	// ClockWarning says it for people when it exceeds MaxClockOffset.
	ClockOffset  *Duration `json:"clock_offset,omitempty"`
	ClockWarning string    `json:"clock_warning,omitempty"`

	// SessionsTotal counts the sessions ended since the connector started
	// (refusals included); BytesUp and BytesDown the session bytes relayed
	// towards the targets and back, counted as they move.
	SessionsTotal uint64 `json:"sessions_total"`
	BytesUp       int64  `json:"bytes_up"`
	BytesDown     int64  `json:"bytes_down"`

	// SupportRecipient is the age public key the control plane announced
	// for support bundles (absent before the first tunnel).
	SupportRecipient string `json:"support_recipient,omitempty"`
}

// TargetPolicy is the connector's effective target policy (config
// allowed_targets and the default deny set, package allowlist).
type TargetPolicy struct {
	// All is true when allowed_targets is empty: every private or public
	// address outside Denied is allowed.
	All bool `json:"all"`
	// Entries is the configured allowed_targets (empty when All).
	Entries []string `json:"entries"`
	// Denied is the default deny set as it applies now, the appliance's
	// current addresses included: refused unless an IP entry names them.
	Denied []DeniedRange `json:"denied"`
	// Summary says it in one line for people.
	Summary string `json:"summary"`
}

// DeniedRange is one range of the default deny set.
type DeniedRange struct {
	Range string `json:"range"` // CIDR, e.g. "169.254.0.0/16"
	What  string `json:"what"`  // e.g. "link-local (incl. the metadata service 169.254.169.254)"
}

// TokenRequest is the body of POST /v1/token: an enrolment or recovery token
// typed by the operator. The connector tells the two apart through the
// control plane's answer, not through the request.
type TokenRequest struct {
	Token string `json:"token"`
}

// ErrorBody is the JSON body of every non-2xx answer.
type ErrorBody struct {
	Code    string `json:"code"`    // stable, for programs: e.g. "token_typo"
	Message string `json:"message"` // for people: what is wrong
	Hint    string `json:"hint,omitempty"`
}
