package agent

import (
	"crypto/rand"
	"math/big"
	"time"

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

// defaultRetryDelay is jittered exponential backoff: about 0.5–1 s first,
// doubling, capped at 30 s.
func defaultRetryDelay(n int) time.Duration {
	d := time.Second << min(n, 5)
	if d > 30*time.Second {
		d = 30 * time.Second
	}
	j, err := rand.Int(rand.Reader, big.NewInt(int64(d/2)))
	if err != nil {
		return d
	}
	return d/2 + time.Duration(j.Int64())
}
