package protocol

import (
	"time"
)

// The tunnel (ARCHITECTURE.md, "Protocol", 3–5). The connector dials the control plane's
// one TLS listener with ALPN "vaultpam-tunnel/1", TLS 1.3 only, presenting
// its client certificate, and runs a yamux session on top (yamux client
// side = connector). Two kinds of yamux streams then exist:
//
//  1. The control stream: the first and only stream the connector opens.
//     Both sides exchange TunnelMessage frames on it (WriteTunnelFrame /
//     ReadTunnelFrame). The connector speaks first with a Hello; the control
//     plane answers HelloAck (or HelloAck with Error and closes: revoked,
//     unknown certificate…). Then the connector sends a Heartbeat every
//     HeartbeatInterval (set by the control plane in HelloAck and in every
//     HeartbeatAck), asks for certificate renewal with RenewRequest, and
//     reports every session end with SessionEnd. The control plane may ask
//     the connector to abort a session with SessionAbort.
//
//  2. Session streams: opened by the control plane, one per brokered
//     session. The control plane writes one SessionHeader frame; the
//     connector answers one SessionReply frame (OK, or a typed error) and,
//     when OK, both sides relay raw bytes; each side half-closes (yamux FIN)
//     when its source reaches EOF.
//
//  3. Typed connector streams: opened by the connector after the control
//     stream, each starting with a StreamHeader naming its type (today only
//     StreamSupportBundle). See tunnel_stream.go.
//
// A frame is a 4-byte big-endian length followed by that many bytes of JSON;
// frames larger than MaxMessageFrame are refused.

// TunnelVersion is the version of these messages, sent in Hello. A control
// plane refuses a Hello with a version it does not speak.
const TunnelVersion = 1

// Message types on the control stream (TunnelMessage.Type).
const (
	MsgHello         = "hello"          // connector → control plane, first
	MsgHelloAck      = "hello_ack"      // control plane → connector
	MsgHeartbeat     = "heartbeat"      // connector → control plane
	MsgHeartbeatAck  = "heartbeat_ack"  // control plane → connector
	MsgRenewRequest  = "renew_request"  // connector → control plane
	MsgRenewResponse = "renew_response" // control plane → connector
	MsgSessionEnd    = "session_end"    // connector → control plane
	MsgSessionAbort  = "session_abort"  // control plane → connector
	MsgDraining      = "draining"       // connector → control plane: no new sessions
	MsgUpdateOffer   = "update_offer"   // control plane → connector: an image update to install
)

// TunnelMessage is one frame on the control stream. Type says which of the
// other fields is set.
type TunnelMessage struct {
	Type       string           `json:"type"`
	Hello      *TunnelHello     `json:"hello,omitempty"`
	HelloAck   *TunnelHelloAck  `json:"hello_ack,omitempty"`
	Heartbeat  *TunnelHeartbeat `json:"heartbeat,omitempty"`
	Ack        *TunnelAck       `json:"ack,omitempty"` // heartbeat_ack
	Renew      *RenewRequest    `json:"renew,omitempty"`
	Renewed    *RenewResponse   `json:"renewed,omitempty"`
	SessionEnd *SessionEnd      `json:"session_end,omitempty"`
	Abort      *SessionAbort    `json:"abort,omitempty"`
	Draining   *TunnelHeartbeat `json:"draining,omitempty"`
	Offer      *UpdateOffer     `json:"offer,omitempty"` // update_offer
	Error      *TunnelError     `json:"error,omitempty"` // set on hello_ack when refused
}

// TunnelHello opens the control stream.
type TunnelHello struct {
	ProtocolVersion int    `json:"protocol_version"` // TunnelVersion
	Version         string `json:"version"`          // connector software version
	Name            string `json:"name,omitempty"`   // configured connector name
	// Heartbeat carries the same fields as every later heartbeat.
	Heartbeat TunnelHeartbeat `json:"heartbeat"`
}

// TunnelHelloAck accepts the tunnel.
type TunnelHelloAck struct {
	ConnectorID       string        `json:"connector_id"`
	HeartbeatInterval time.Duration `json:"heartbeat_interval_ns"`
	// ServerTime is the control plane's clock when it answered; the
	// connector estimates its clock offset from it (see TunnelAck).
	ServerTime time.Time `json:"server_time"`
	// SupportRecipient is the age X25519 public key ("age1…") support
	// bundles are encrypted to; empty when the control plane takes none.
	SupportRecipient string `json:"support_recipient,omitempty"`
}

// TunnelHeartbeat is the connector's health, sent every HeartbeatInterval.
type TunnelHeartbeat struct {
	Seq            uint64    `json:"seq"`
	State          string    `json:"state"` // localapi state name: online, draining
	Version        string    `json:"version"`
	ActiveSessions int       `json:"active_sessions"`
	CertNotAfter   time.Time `json:"cert_not_after"`
	SentAt         time.Time `json:"sent_at"`
	// ImageVersion is the running appliance image's version; empty where
	// the connector does not run on the appliance.
	ImageVersion string `json:"image_version,omitempty"`
	// Update is the state of the latest update, while there is one to say.
	Update *UpdateReport `json:"update,omitempty"`
	// ClockOffset is the control plane's clock minus the connector's, as
	// the connector last estimated it (nil before the first estimate).
	ClockOffset *time.Duration `json:"clock_offset_ns,omitempty"`
}

// UpdateOffer offers the appliance an image update (control plane →
// connector, on the control stream; again after every hello while it
// stands). The connector downloads the signed update metadata and the
// bundle from the control plane over HTTPS with its client certificate
// (through the configured proxy), and hands them to the appliance's
// updater, which verifies them before it writes anything.
type UpdateOffer struct {
	ID      string `json:"id"`      // unique per offer
	Version string `json:"version"` // the offered image version
	// Target is the bundle's name in the signed metadata.
	Target string     `json:"target"`
	Bundle UpdateFile `json:"bundle"`
	// Metadata are the signed metadata files: every root version
	// (1.root.json … N.root.json), timestamp.json, snapshot.json and
	// targets.json.
	Metadata []UpdateFile `json:"metadata"`
}

// UpdateFile is one file of an offer, fetched with GET Path from the
// control plane's URL.
type UpdateFile struct {
	Name   string `json:"name"`
	Path   string `json:"path"`   // e.g. /v1/update/<offer id>/targets.json
	Length int64  `json:"length"` // the exact size; longer downloads are cut off
}

// UpdateReport is an update's state in a heartbeat. State is one of the
// localapi.Update* names (offered, downloading, installed, rebooting,
// succeeded, failed, rolled_back).
type UpdateReport struct {
	OfferID string `json:"offer_id,omitempty"`
	Version string `json:"version"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

// TunnelAck answers a heartbeat. HeartbeatInterval may change the interval
// from the next heartbeat on.
//
// ServerTime is the control plane's clock when it answered. The connector
// estimates its clock offset as ServerTime minus its own clock at the
// midpoint of the round trip (heartbeat sent → ack read): the error is at
// most half the round trip.
type TunnelAck struct {
	Seq               uint64        `json:"seq"`
	HeartbeatInterval time.Duration `json:"heartbeat_interval_ns"`
	ServerTime        time.Time     `json:"server_time,omitzero"`
}

// RenewRequest asks for a new client certificate. CSR is DER (PKCS #10),
// signed by the connector's key; the control plane binds the new
// certificate to the connector ID of the tunnel, never to anything in the CSR.
type RenewRequest struct {
	CSR []byte `json:"csr"`
}

// RenewResponse carries the new certificate chain (DER, leaf first), or
// Error.
type RenewResponse struct {
	Chain [][]byte     `json:"chain,omitempty"`
	Error *TunnelError `json:"error,omitempty"`
}

// TunnelError is a typed refusal on the control stream.
type TunnelError struct {
	Code    string `json:"code"` // TunnelRevoked, TunnelUnknown, …
	Message string `json:"message"`
	// CertSHA256 is CertFingerprint of the client certificate the control
	// plane judged, on a refusal of the identity. The connector takes the
	// refusal as about its own identity only when this is its own
	// certificate's fingerprint (or empty, from an older control plane):
	// a TLS-inspecting proxy in between presents a certificate of its own,
	// or none.
	CertSHA256 string `json:"cert_sha256,omitempty"`
}

// Codes of TunnelError. The identity refusals are the enrolment API's
// codes (CodeCertRevoked, …): one vocabulary for "this identity is not
// accepted", over the tunnel and over HTTPS.
const (
	TunnelRevoked     = CodeCertRevoked     // certificate revoked
	TunnelUnknown     = CodeCertUnknown     // certificate or connector unknown to this control plane
	TunnelExpired     = CodeCertExpired     // certificate expired by the control plane's clock
	TunnelNotYetValid = CodeCertNotYetValid // certificate not yet valid by the control plane's clock; retry
	TunnelNoCert      = CodeNoClientCert    // no client certificate arrived (a TLS-inspecting proxy strips it); retry
	TunnelBadHello    = "bad_hello"         // malformed or unsupported hello
	TunnelRenewFailed = "renew_failed"      // renewal refused; try again later
	TunnelUnavailable = "unavailable"       // control plane shutting down; reconnect
)

// TunnelPermanent reports whether a refusal code means the identity is not
// usable any more (the connector goes to needs_recovery, if the refusal is
// about its own certificate: see TunnelError.CertSHA256).
func TunnelPermanent(code string) bool { return RefusesIdentity(code) }

// SessionHeader is the first frame of a session stream (control plane →
// connector).
type SessionHeader struct {
	SessionID string `json:"session_id"`
	Target    string `json:"target"` // host:port
}

// SessionReply answers SessionHeader. OK means the connector dialled the
// target and relays from now on; otherwise Error says why not and the
// connector closes the stream.
type SessionReply struct {
	OK    bool          `json:"ok"`
	Error *SessionError `json:"error,omitempty"`
}

// SessionError is a typed session refusal; Code is one of the Reason
// values (ReasonNotAllowed, ReasonDialFailed, …).
type SessionError struct {
	Code    Reason `json:"code"`
	Message string `json:"message"`
}

func (e *SessionError) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Reason says why a session ended or was refused. Every session end has one.
type Reason string

// Session end and refusal reasons.
const (
	ReasonTargetClosed     Reason = "target_closed"     // the target ended the connection
	ReasonClientClosed     Reason = "client_closed"     // the control plane's side ended it
	ReasonConnectorOffline Reason = "connector_offline" // heartbeats stopped or the tunnel was lost
	ReasonDraining         Reason = "draining"          // connector shutting down (refused, or grace expired)
	ReasonDialFailed       Reason = "dial_failed"       // target refused or unreachable
	ReasonDialTimeout      Reason = "dial_timeout"      // target did not answer in time
	ReasonResolveFailed    Reason = "resolve_failed"    // target name did not resolve
	ReasonNotAllowed       Reason = "not_allowed"       // target outside allowed_targets
	ReasonBadRequest       Reason = "bad_request"       // malformed header or target
	ReasonAborted          Reason = "aborted"           // aborted by the control plane
	ReasonUpdateReboot     Reason = "update_reboot"     // the appliance rebooted into an update after the drain period
	ReasonError            Reason = "error"             // relay failed (I/O error)
)

// SessionEnd reports the end of a session (connector → control plane).
type SessionEnd struct {
	SessionID string `json:"session_id"`
	Reason    Reason `json:"reason"`
	Detail    string `json:"detail,omitempty"`
	BytesUp   int64  `json:"bytes_up"`   // control plane → target
	BytesDown int64  `json:"bytes_down"` // target → control plane
}

// SessionAbort asks the connector to end a session now.
type SessionAbort struct {
	SessionID string `json:"session_id"`
	Reason    Reason `json:"reason"`
}
