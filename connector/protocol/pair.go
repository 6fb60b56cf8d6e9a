package protocol

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Pairing without typing a token (ARCHITECTURE.md, "Protocol", 2a): the
// OAuth 2.0 device authorization grant (RFC 8628), adapted. JSON bodies
// over the enrolment listener's HTTPS:
//
//	POST PairStartPath  PairStartRequest → PairStart
//	POST PairPollPath   PairPollRequest  → PairResult, or 400 ErrorResponse
//	                    with Code authorization_pending, slow_down,
//	                    access_denied, expired_token or invalid_grant
//
// The connector asks for a pairing and gets a secret device code, a short
// public user code (usercode.go) and where an administrator approves it
// (VerificationURI; VerificationURIComplete has the code in its query, for
// a QR code). It shows the user code and polls every Interval seconds;
// slow_down means "add 5 seconds to the interval, for good". When the
// administrator approves, the poll answers once with a single-use
// enrolment token (or, approved as a recovery, a recovery token that
// re-binds ConnectorID) issued for this device code alone, and the
// connector runs the unchanged token enrolment (enrol.go) with it: same
// key, CSR and challenge, same certificate and identity as a typed token.
// The token travels only in that TLS answer: it is never shown, logged or
// stored by the connector. A lost answer is not lost for good: polling
// again with the same device code issues a fresh token and voids the
// unused one.
//
// The device code is a secret (32 random bytes): the control plane stores
// only its SHA-256, and the connector keeps it in memory only, never on
// screen, disk, argv or in a log. The user code is public, expires with
// the device code (ExpiresIn, 10 minutes) and is single use; the approval
// page rate-limits wrong codes.
const (
	PairStartPath = "/v1/pair/start"
	PairPollPath  = "/v1/pair/poll"
	// PairPagePath is the approval page on the control plane's HTTPS
	// listener; PairPageQuery carries the user code in
	// VerificationURIComplete.
	PairPagePath  = "/pair"
	PairPageQuery = "code"
)

// Pairing poll answers other than success (ErrorResponse.Code, HTTP 400),
// as in RFC 8628, section 3.5.
const (
	CodePairPending  = "authorization_pending" // not decided yet: poll again after Interval
	CodePairSlowDown = "slow_down"             // polled too fast: add 5 s to the interval, then poll again
	CodePairDenied   = "access_denied"         // the administrator denied it
	CodePairExpired  = "expired_token"         // the codes expired before an approval: start a new pairing
	// CodePairUnknown is an unknown device code, or a pairing that was
	// completed already (its token used): start a new pairing.
	CodePairUnknown = "invalid_grant"
)

// CodePairRateLimited (HTTP 429) refuses a new pairing while too many
// wait for approval; the connector retries later.
const CodePairRateLimited = "rate_limited"

// PairSlowDownStep is what slow_down adds to the poll interval.
const PairSlowDownStep = 5 // seconds

// PairStartRequest asks for a pairing. Everything in it is shown to the
// administrator who approves, so they can tell which appliance asks.
type PairStartRequest struct {
	// Name is the connector's configured name (connector_name); the
	// approval page proposes it.
	Name         string   `json:"name"`
	Hostname     string   `json:"hostname,omitempty"`
	Addresses    []string `json:"addresses,omitempty"`     // the connector's IP addresses, without loopback
	Version      string   `json:"version,omitempty"`       // the connector's version
	ImageVersion string   `json:"image_version,omitempty"` // the appliance image's version; empty in other shapes
	// ConnectorID is the connector's previous ID when it knows one (it
	// needs recovery with a damaged or refused identity): the approval
	// page then offers to approve it as a recovery of that connector.
	ConnectorID string `json:"connector_id,omitempty"`
}

// PairStart answers PairStartRequest (RFC 8628, section 3.2).
type PairStart struct {
	DeviceCode              string `json:"device_code"`               // secret: never shown, logged or stored
	UserCode                string `json:"user_code"`                 // canonical (ParseUserCode); show it with FormatUserCode
	VerificationURI         string `json:"verification_uri"`          // the approval page
	VerificationURIComplete string `json:"verification_uri_complete"` // the page with the code filled in, for a QR code
	ExpiresIn               int    `json:"expires_in"`                // seconds until both codes expire
	Interval                int    `json:"interval"`                  // seconds between polls
}

// PairPollRequest asks whether a pairing was decided.
type PairPollRequest struct {
	DeviceCode string `json:"device_code"`
}

// PairResult answers PairPollRequest once the administrator approved.
type PairResult struct {
	// Token is a single-use enrolment token, or a recovery token when
	// Recovery, canonical (ParseToken). It is valid for a few minutes and
	// is presented at once to EnrolStartPath; never shown or stored.
	Token    string `json:"token"`
	Recovery bool   `json:"recovery"`
	// ConnectorID is the connector a recovery re-binds.
	ConnectorID string `json:"connector_id,omitempty"`
	// Name is the name the administrator gave the connector.
	Name string `json:"name"`
}

// NewDeviceCode returns 32 random bytes, base64url without padding (43
// characters). rand nil means crypto/rand.
func NewDeviceCode(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ValidDeviceCode reports whether s has the shape NewDeviceCode makes.
func ValidDeviceCode(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// PairPageURL is the approval page of the control plane at base
// (https://HOST[:PORT]), and with code the page with it filled in.
func PairPageURL(base, code string) string {
	u := strings.TrimRight(base, "/") + PairPagePath
	if code == "" {
		return u
	}
	return u + "?" + url.Values{PairPageQuery: {FormatUserCode(code)}}.Encode()
}
