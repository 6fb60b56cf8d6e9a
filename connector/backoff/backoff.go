// Package backoff is the connector's one retry schedule: jittered
// exponential backoff, used for reconnecting the tunnel and for retrying
// enrolment and identity checks when the control plane is not reachable.
package backoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Backoff is jittered exponential backoff: before attempt n (0 = the first
// retry) the client waits a uniformly random time in [b/2, b] where
// b = min(Max, Initial·Factor^n). With the defaults the first retry comes
// within 1 s and no wait exceeds 30 s; the jitter spreads a fleet of
// connectors that lost the control plane at the same moment.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Factor  float64
}

// Default returns 1 s initial, ×2, 30 s cap.
func Default() Backoff {
	return Backoff{Initial: time.Second, Max: 30 * time.Second, Factor: 2}
}

// Validate reports every problem with b.
func (b Backoff) Validate() error {
	var errs []error
	if b.Initial <= 0 {
		errs = append(errs, errors.New("backoff initial wait must be positive"))
	}
	if b.Max < b.Initial {
		errs = append(errs, fmt.Errorf("backoff cap %v is below the initial wait %v", b.Max, b.Initial))
	}
	if b.Factor < 1 {
		errs = append(errs, fmt.Errorf("backoff factor %v: want at least 1", b.Factor))
	}
	return errors.Join(errs...)
}

// Delay returns the wait before retry number attempt (0-based), drawing
// the jitter from rand (8 bytes per call). A failing rand yields the
// upper bound, never a tighter loop.
func (b Backoff) Delay(attempt int, rand io.Reader) time.Duration {
	ceil := float64(b.Initial)
	for i := 0; i < attempt && ceil < float64(b.Max); i++ {
		ceil *= b.Factor
	}
	ceil = min(ceil, float64(b.Max))
	var buf [8]byte
	if _, err := io.ReadFull(rand, buf[:]); err != nil {
		return time.Duration(ceil)
	}
	frac := float64(binary.BigEndian.Uint64(buf[:])>>11) / (1 << 53) // [0,1)
	return time.Duration(ceil/2 + frac*ceil/2)
}
