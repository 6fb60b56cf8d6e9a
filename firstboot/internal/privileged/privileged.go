// Package privileged is the console's one privileged path. The console
// (vaultpam-console on tty1 and ttyS0) runs as the unprivileged user
// vaultpam-console; what it needs root for goes, as one of a closed list
// of typed requests, to a small root daemon (vaultpam-console helper,
// socket-activated on DefaultSocket, 0660 root:vaultpam-console). This
// package holds that list, the daemon (Server) and its client (Client).
//
// The server trusts nothing it is sent: settings are validated again with
// package settings before a byte reaches /config, a body that names a
// field outside the list (a token above all) is refused, and every request
// is logged with the caller's pid and uid. Untrusted input from outside the
// box (the OVF environment) is never parsed here: the server hands over
// the raw bytes, size-limited, and the unprivileged console parses them.
package privileged

import (
	"fmt"
	"net/http"
	"time"
)

// DefaultSocket is where the helper listens on the appliance.
const DefaultSocket = "/run/vaultpam-console-helper.sock"

// Request is one thing the console may ask of the helper. The list below
// is closed: every other path is answered 404, every other method 405.
type Request string

// The requests, as paths under /v1/.
const (
	// WriteSettings (POST, a SettingsBody) validates the settings and
	// writes the networkd unit, hostname, timesyncd.conf and
	// connector.yaml under /config. Never a token.
	WriteSettings Request = "settings"
	// ApplyNetwork (POST) sets the kernel's hostname from /config/hostname
	// and restarts systemd-networkd and systemd-timesyncd.
	ApplyNetwork Request = "network/apply"
	// RestartConnector (POST) restarts vaultpam-connector.service.
	RestartConnector Request = "connector/restart"
	// Reboot and PowerOff (POST) ask systemd to reboot or power off.
	Reboot   Request = "power/reboot"
	PowerOff Request = "power/poweroff"
	// TrustCA (POST, PEM certificates) adds them to /config/ca.pem and
	// points connector.yaml's control_plane_ca_file at it. Public
	// material only: a private key is refused.
	TrustCA Request = "trust/ca"
	// TrialNetwork (POST, a SettingsBody) applies new network settings on
	// trial: the current ones are kept aside, the new ones written and
	// applied, and unless KeepNetwork comes before the deadline the kept
	// ones come back by themselves (the helper's timer, and
	// vaultpam-network-revert.timer should the helper die). The answer's
	// Trial says until when.
	TrialNetwork Request = "network/trial"
	// KeepNetwork (POST) ends a trial, keeping the new settings.
	KeepNetwork Request = "network/keep"
	// RevertNetwork (POST) ends a trial now, restoring the kept settings.
	RevertNetwork Request = "network/revert"
	// TrialStatus (GET) answers a TrialState as JSON.
	TrialStatus Request = "network/trial-status"
	// GuestInfo (GET) returns guestinfo.ovfEnv from VMware Tools
	// (vmware-rpctool), raw, at most MaxGuestInfo bytes; 404 when unset.
	GuestInfo Request = "ovf/guestinfo"
	// VerityStatus (GET) returns `dmsetup status --target verity`, raw,
	// at most MaxVerityStatus bytes.
	VerityStatus Request = "verity/status"
)

// Endpoint is a request with the one method it is made with.
type Endpoint struct {
	Request Request
	Method  string
}

// Path is the endpoint's URL path.
func (e Endpoint) Path() string { return "/v1/" + string(e.Request) }

// Endpoints lists every request, in the order the documentation gives
// them. The server serves exactly these.
func Endpoints() []Endpoint {
	return []Endpoint{
		{WriteSettings, http.MethodPost},
		{ApplyNetwork, http.MethodPost},
		{RestartConnector, http.MethodPost},
		{Reboot, http.MethodPost},
		{PowerOff, http.MethodPost},
		{TrustCA, http.MethodPost},
		{TrialNetwork, http.MethodPost},
		{KeepNetwork, http.MethodPost},
		{RevertNetwork, http.MethodPost},
		{TrialStatus, http.MethodGet},
		{GuestInfo, http.MethodGet},
		{VerityStatus, http.MethodGet},
	}
}

// Limits on what crosses the socket.
const (
	MaxBody         = 96 << 10 // a request body (a CA bundle fits)
	MaxGuestInfo    = 1 << 20  // the OVF environment from guestinfo
	MaxVerityStatus = 64 << 10 // dmsetup's status lines
)

// SettingsBody is the wire form of settings.Settings: the only fields a
// WriteSettings request may carry.
type SettingsBody struct {
	Interface       string `json:"interface"`
	DHCP            bool   `json:"dhcp"`
	NoIPv4          bool   `json:"no_ipv4"`
	Address         string `json:"address"`
	Gateway         string `json:"gateway"`
	IPv6            string `json:"ipv6"`
	Address6        string `json:"address6"`
	Gateway6        string `json:"gateway6"`
	VLAN            string `json:"vlan"`
	DNS             string `json:"dns"`
	NTP             string `json:"ntp"`
	Hostname        string `json:"hostname"`
	Proxy           string `json:"proxy"`
	ControlPlaneURL string `json:"control_plane_url"`
	ConnectorName   string `json:"connector_name"`
	CACert          string `json:"ca_cert"` // PEM certificates, public material
}

// Done is the answer to an action that went ahead.
type Done struct {
	Detail string      `json:"detail,omitempty"` // what was done, for the screen
	Files  []string    `json:"files,omitempty"`  // WriteSettings: paths written, relative to the root
	Trial  *TrialState `json:"trial,omitempty"`  // TrialNetwork: the trial now running
}

// TrialState is where a trial network change stands.
type TrialState struct {
	Active   bool      `json:"active"`
	Deadline time.Time `json:"deadline,omitempty"` // the kept settings come back then
	// LastRevert says when and why the kept settings last came back
	// (empty when they never did since the helper started).
	RevertedAt   time.Time `json:"reverted_at,omitempty"`
	RevertReason string    `json:"revert_reason,omitempty"`
}

// ErrorBody is the JSON answer to a refused or failed request.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Error codes.
const (
	CodeUnknownRequest = "unknown_request" // not on the list (404)
	CodeMethod         = "method"          // wrong method (405)
	CodeBadRequest     = "bad_request"     // body does not decode, too large, unknown field
	CodeSecret         = "secret_refused"  // a field that looks like a secret (a token)
	CodeInvalid        = "invalid"         // settings that do not validate
	CodeRateLimited    = "rate_limited"    // a power request too soon after the last
	CodeTooLarge       = "too_large"       // raw output above its limit
	CodeNotFound       = "not_found"       // GuestInfo: no OVF environment
	CodeFailed         = "failed"          // the action itself failed
)

// Error is a refusal or failure, from the server's point of view (Status)
// or as the client received it.
type Error struct {
	Status  int
	Code    string
	Message string
	Hint    string
}

func (e *Error) Error() string {
	if e.Hint != "" {
		return fmt.Sprintf("%s (hint: %s)", e.Message, e.Hint)
	}
	return e.Message
}
