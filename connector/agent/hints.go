package agent

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/vaultpam/appliance/connector/backoff"

	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/tlsreason"
)

func tokenHint(code string) string {
	switch code {
	case "token_invalid":
		return enrol.Hint(protocol.CodeBadRequest)
	}
	return enrol.Hint(code)
}

// defaultRetryDelay is the connector's backoff (backoff.Default): the
// first retry within 1 s, doubling, capped at 30 s, jittered.
func defaultRetryDelay(n int) time.Duration {
	return backoff.Default().Delay(n, rand.Reader)
}

// retryReason says why talking to the control plane failed in a way worth
// retrying, and what to do: a TLS failure explained (package tlsreason),
// a refusal that is not about this connector's identity, or the network.
func retryReason(err error) (reason, hint string) {
	var te *tlsreason.Error
	var ee *enrol.Error
	switch {
	case errors.As(err, &te):
		return te.Reason, te.Hint
	case errors.As(err, &ee) && ee.Code == protocol.CodeNoClientCert:
		return "the control plane received no client certificate; " + tlsreason.ProxyHint, enrol.Hint(ee.Code)
	case errors.As(err, &ee) && protocol.RefusesIdentity(ee.Code) && !ee.OwnCert:
		return fmt.Sprintf("the control plane refused a client certificate that is not this connector's (%s); %s", ee.Code, tlsreason.ProxyHint),
			enrol.Hint(protocol.CodeNoClientCert)
	case errors.As(err, &ee):
		return fmt.Sprintf("control plane answered %s: %s", ee.Code, ee.Message), "the connector retries by itself"
	}
	return fmt.Sprintf("control plane not reachable (%v)", err), "check the network, DNS, proxy_url and control_plane_url"
}
