package localapi

import (
	"fmt"
	"time"
)

// MaxClockOffset is the clock offset to the control plane above which the
// status carries a warning: certificates, update metadata and logs all
// depend on a right clock.
const MaxClockOffset = 5 * time.Second

// ClockWarning returns the warning for a clock offset (control plane minus
// this machine), or "" when it is within MaxClockOffset.
func ClockWarning(offset time.Duration) string {
	abs, dir := offset, "behind"
	if offset < 0 {
		abs, dir = -offset, "ahead of"
	}
	if abs <= MaxClockOffset {
		return ""
	}
	r := time.Second
	if abs < time.Minute {
		r = 100 * time.Millisecond
	}
	return fmt.Sprintf("this machine's clock is %s %s the control plane's: check NTP", abs.Round(r), dir)
}
