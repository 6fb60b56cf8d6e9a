package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Enrolment over HTTPS (ARCHITECTURE.md, "Protocol", 2), JSON bodies, two round trips:
//
//	POST EnrolStartPath   EnrolStartRequest  → EnrolChallenge
//	POST EnrolFinishPath  EnrolFinishRequest → EnrolResult
//
// The connector presents its token and gets a one-time nonce. It generates
// an ECDSA P-256 key, builds a CSR and signs ChallengeDigest(nonce, csr)
// with the same key (proof of possession). The control plane checks the
// signature, consumes the token and issues a client certificate whose URI
// SAN is ConnectorURI(id), in one transaction. Sending the same finish
// request again (same challenge, same CSR) returns the same result, so a
// lost response can be retried. A recovery token re-binds its existing
// connector ID and revokes that connector's previous certificates.
//
// WhoAmIPath, called over mTLS with the issued certificate, tells the
// connector whether the control plane still accepts its identity.
//
// Every non-2xx answer carries an ErrorResponse with one of the Code*
// values, so the connector can tell a used token from an expired one.
const (
	EnrolStartPath  = "/v1/enrol/start"
	EnrolFinishPath = "/v1/enrol/finish"
	WhoAmIPath      = "/v1/connector/whoami"
	// ALPNTunnel selects the tunnel on the control plane's one TLS listener.
	ALPNTunnel = "vaultpam-tunnel/1"
	// ALPNHTTP selects enrolment and the other HTTPS endpoints.
	ALPNHTTP = "http/1.1"
)

// EnrolStartRequest opens an enrolment. Token is canonical (ParseToken).
type EnrolStartRequest struct {
	Token string `json:"token"`
	// Name is the connector's configured name; informational.
	Name string `json:"name,omitempty"`
}

// EnrolChallenge answers EnrolStartRequest.
type EnrolChallenge struct {
	ChallengeID string    `json:"challenge_id"`
	Nonce       []byte    `json:"nonce"` // 32 random bytes
	ExpiresAt   time.Time `json:"expires_at"`
	// Recovery is true when the token re-binds an existing connector.
	Recovery    bool   `json:"recovery"`
	ConnectorID string `json:"connector_id,omitempty"` // set for recovery
}

// EnrolFinishRequest answers the challenge. CSR is DER (PKCS #10) for an
// ECDSA P-256 key; Signature is ASN.1 ECDSA by that key over
// ChallengeDigest(nonce, CSR).
type EnrolFinishRequest struct {
	ChallengeID string `json:"challenge_id"`
	CSR         []byte `json:"csr"`
	Signature   []byte `json:"signature"`
}

// EnrolResult is the issued identity, minus the private key that never
// left the connector.
type EnrolResult struct {
	ConnectorID    string `json:"connector_id"`
	CertificatePEM string `json:"certificate_pem"`
	CABundlePEM    string `json:"ca_bundle_pem"`
	Recovery       bool   `json:"recovery"`
}

// WhoAmI answers WhoAmIPath for an accepted certificate.
type WhoAmI struct {
	ConnectorID string `json:"connector_id"`
	Name        string `json:"name"`
	Status      string `json:"status"`
}

// ErrorResponse is the body of every enrolment error.
type ErrorResponse struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// CertSHA256 is CertFingerprint of the client certificate judged, on
	// the identity refusals (see TunnelError.CertSHA256).
	CertSHA256 string `json:"cert_sha256,omitempty"`
}

// Error codes of the enrolment API.
const (
	CodeBadRequest      = "bad_request"
	CodeTokenTypo       = "token_typo"         // check character wrong (client-side too)
	CodeTokenUnknown    = "token_unknown"      // no such token
	CodeTokenUsed       = "token_used"         // already consumed
	CodeTokenExpired    = "token_expired"      // TTL passed
	CodeChallengeFailed = "challenge_failed"   // unknown/expired challenge, bad signature or CSR
	CodeCertRevoked     = "cert_revoked"       // certificate revoked (e.g. by a recovery)
	CodeCertUnknown     = "cert_unknown"       // certificate not issued by this control plane
	CodeCertExpired     = "cert_expired"       // certificate expired by the control plane's clock
	CodeCertNotYetValid = "cert_not_yet_valid" // not valid yet by the control plane's clock (its clock or ours is off); retry
	CodeNoClientCert    = "no_client_cert"     // mTLS endpoint called without a certificate
	CodeInternal        = "internal"
)

// RefusesIdentity reports whether code is the control plane's refusal of
// the connector's identity for good: revoked, unknown or expired. Only
// such an answer, at the application level over a connection whose
// certificate the connector verified, and about the connector's own
// certificate, sends it to needs_recovery; a TLS alert, a certificate the
// connector cannot verify or its own clock's opinion never do.
func RefusesIdentity(code string) bool {
	switch code {
	case CodeCertRevoked, CodeCertUnknown, CodeCertExpired:
		return true
	}
	return false
}

// CertFingerprint is the hex SHA-256 of a certificate's DER bytes, as in
// TunnelError.CertSHA256 and ErrorResponse.CertSHA256.
func CertFingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

const challengeContext = "vaultpam-enrol-v1\x00"

// ChallengeDigest is the SHA-256 the connector signs to prove it holds the
// key in csr: a context string, the nonce, then the CSR bytes.
func ChallengeDigest(nonce, csr []byte) []byte {
	h := sha256.New()
	h.Write([]byte(challengeContext))
	h.Write(nonce)
	h.Write(csr)
	return h.Sum(nil)
}

// ConnectorURI is the URI SAN that binds a certificate to connector id.
func ConnectorURI(id string) string { return "vaultpam://connector/" + id }

// ConnectorIDFromURIs returns the connector ID from a certificate's URI
// SANs, or an error when there is not exactly one vaultpam connector URI.
func ConnectorIDFromURIs(uris []*url.URL) (string, error) {
	var ids []string
	for _, u := range uris {
		if u.Scheme == "vaultpam" && u.Host == "connector" {
			id := strings.TrimPrefix(u.Path, "/")
			if id != "" && !strings.Contains(id, "/") {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) != 1 {
		return "", fmt.Errorf("certificate has %d vaultpam connector URIs, want 1", len(ids))
	}
	return ids[0], nil
}
