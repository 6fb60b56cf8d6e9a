package agent

import (
	"crypto/rand"
	"time"

	"github.com/vaultpam/appliance/connector/backoff"

	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/protocol"
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
