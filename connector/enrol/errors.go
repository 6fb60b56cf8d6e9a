package enrol

import (
	"errors"

	"github.com/vaultpam/appliance/connector/protocol"
)

// Error is an error the control plane (or the token check) reported, with
// its protocol.Code* value.
type Error struct {
	Code    string
	Message string
	// OwnCert is set by WhoAmI on an identity refusal (cert_revoked,
	// cert_unknown, cert_expired) about the very certificate this
	// connector presented; a refusal of another certificate (one a
	// TLS-inspecting proxy presented instead) leaves it false.
	OwnCert bool

	certSHA256 string // the certificate the control plane judged
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// Hint says what the operator does next for this error.
func (e *Error) Hint() string { return Hint(e.Code) }

// Hint returns the advice for an error code ("" when there is none).
func Hint(code string) string {
	switch code {
	case protocol.CodeTokenTypo:
		return "compare the token with the dashboard character by character and type it again"
	case protocol.CodeTokenUnknown:
		return "check that the token is for this control plane, or create a new one in the dashboard (Connectors → Add)"
	case protocol.CodeTokenUsed:
		return "tokens work once; for a connector that lost its identity create a recovery token (Connectors → the connector → Recover), otherwise a new enrolment token"
	case protocol.CodeTokenExpired:
		return "create a new token in the dashboard (Connectors → Add); tokens are valid for 1 hour"
	case protocol.CodeCertRevoked:
		return "create a recovery token for this connector in the dashboard (Connectors → the connector → Recover) and enter it on the console"
	case protocol.CodeCertUnknown:
		return "this identity is not known to the configured control plane; check control_plane_url, or recover the connector with a recovery token"
	case protocol.CodeCertExpired:
		return "the control plane says the certificate expired: create a recovery token for this connector in the dashboard (Connectors → the connector → Recover) and enter it on the console"
	case protocol.CodeNoClientCert:
		return "something between the connector and the control plane terminates TLS: exempt the control plane's address from TLS inspection"
	case protocol.CodeChallengeFailed:
		return "enrolment was interrupted; enter the token again"
	case protocol.CodeBadRequest:
		return "a token is 20 characters, shown as 4 groups of 5 (letters and digits)"
	}
	return ""
}

// IsCode reports whether err is an *Error with code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// RefusesIdentity reports whether err is the control plane refusing this
// connector's own certificate for good (revoked, unknown, expired): the
// only answer that sends the connector to needs_recovery.
func RefusesIdentity(err error) bool {
	var e *Error
	return errors.As(err, &e) && protocol.RefusesIdentity(e.Code) && e.OwnCert
}

// Permanent reports whether err means the token or identity will not work
// however often it is retried (as opposed to a network problem).
func Permanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code != protocol.CodeInternal && e.Code != protocol.CodeChallengeFailed
}
