// Package gate is the health gate of a trial boot: the new slot is kept
// (blessed by systemd-bless-boot) only when the connector comes Online
// with the connector ID it had before the update, within a bounded time.
//
// It runs as vaultpam-update-gate.service, ordered before
// boot-complete.target and required by it, on counted boots only (the
// bless-boot generator pulls boot-complete.target in only when
// systemd-boot set LoaderBootCountPath). Its verdicts:
//
//   - Online with the same ID, steadily (two heartbeat intervals, with a
//     heartbeat inside them): pass. systemd-bless-boot.service then marks
//     the entry good.
//   - no update record: fail (the expected ID is unknown; counted boots
//     come only from the updater, which records first).
//   - not Online by the deadline (the connector down, the control plane
//     unreachable, reconnecting): fail without marking the entry. The unit
//     fails, FailureAction=reboot reboots, systemd-boot counts the try;
//     after three tries the previous slot boots. A transient outage gets
//     three chances before a rollback.
//   - deterministic failures — Online with another connector ID, or the
//     connector in needs_recovery (it cannot use the identity the old
//     version used): run `systemd-bless-boot bad` first, so the next
//     boot falls back at once instead of retrying what cannot change.
//
// Each verdict is recorded as an attempt in /data/update/attempts.json, so
// the previous slot can report the rollback with its reason.
package gate

import (
	"context"
	"fmt"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/reconcile"
	"github.com/vaultpam/appliance/update/slot"
	"github.com/vaultpam/appliance/update/state"
)

// DefaultDeadline bounds the wait for Online: three heartbeats, the
// reconnect backoff's cap and a slow boot fit well within it.
const DefaultDeadline = 5 * time.Minute

// Gate waits for the connector. Status, Store and Deadline are required.
type Gate struct {
	// Status reads the connector's status (localapi.Client.Status).
	Status   func(ctx context.Context) (localapi.Status, error)
	Store    *state.Store
	Deadline time.Duration
	// Poll is the time between status reads; 0 means 2 s.
	Poll time.Duration
	// Steady is how long the connector must stay Online with the
	// expected ID, with a heartbeat to the control plane inside that
	// time, before the gate passes; 0 means two heartbeat intervals (the
	// status's heartbeat_interval, else 10 s), at most a third of the
	// Deadline. One Online reading is not enough: a connector that goes
	// Online once and then falls over must not be kept.
	Steady time.Duration
	// Slot, Version and Entry describe this boot, for the record.
	Slot, Version, Entry string
	// MarkBad runs `systemd-bless-boot bad`; nil skips it.
	MarkBad func(ctx context.Context) error
	// ESP is the boot entries' directory: when a downgrade or a rollback
	// passes, the entries of the slot it left (the newer image) are
	// retired at once (reconcile.KeepTarget), so a restart before the
	// updater's next look cannot boot that image again by version order.
	// nil skips it.
	ESP  *esp.Dir
	Now  func() time.Time
	Logf func(format string, args ...any)
}

// Verdict is the gate's decision.
type Verdict struct {
	OK bool
	// Bad: a deterministic failure; the entry was marked bad.
	Bad    bool
	Reason string
	State  string // the connector's last state
	ID     string // the connector's ID seen
}

func (g *Gate) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Gate) logf(format string, args ...any) {
	if g.Logf != nil {
		g.Logf(format, args...)
	}
}

// Run waits until the connector is Online with the expected ID, the
// deadline passes or a deterministic failure shows, records the attempt
// and returns the verdict. The error is for failures of the gate itself
// (the record could not be read or written).
func (g *Gate) Run(ctx context.Context) (Verdict, error) {
	p, err := g.Store.Pending()
	if err != nil {
		return Verdict{}, err
	}
	if p == nil {
		// Counted boots come only from the updater, which writes the
		// record first: without it the expected connector ID is unknown,
		// and any ID must not pass. A plain failure: the tries run out
		// and the previous slot boots (three chances if /data was only
		// slow to appear).
		v := Verdict{Reason: fmt.Sprintf("no update record in %s on a trial boot: the connector ID this slot must come back with is unknown", g.Store.Dir)}
		g.logf("gate: %s in slot %s: FAILED: %s", g.Version, g.Slot, v.Reason)
		return v, nil
	}
	want := p.ConnectorID
	poll := g.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	start := g.now()
	ctx, cancel := context.WithTimeout(ctx, g.Deadline)
	defer cancel()
	v := Verdict{Reason: "connector status never read"}
	var onlineSince time.Time // zero while not Online with the expected ID
	for {
		st, err := g.Status(ctx)
		now := g.now()
		online := err == nil && st.State == "online" && (want == "" || st.ConnectorID == want)
		if !online {
			onlineSince = time.Time{}
		} else if onlineSince.IsZero() {
			onlineSince = now
		}
		steady := online && now.Sub(onlineSince) >= g.steady(st)
		switch {
		case err != nil && ctx.Err() != nil && v.State != "":
			// The deadline cut this read short: the last state read says more.
		case err != nil:
			v.Reason = fmt.Sprintf("connector not reachable: %v", err)
		case steady && st.LastHeartbeat.After(start):
			v = Verdict{OK: true, State: st.State, ID: st.ConnectorID,
				Reason: fmt.Sprintf("%s in slot %s: connector Online with ID %s after %s, steady for %s", g.Version, g.Slot, st.ConnectorID,
					onlineSince.Sub(start).Round(time.Second), now.Sub(onlineSince).Round(time.Second))}
		case steady:
			v = Verdict{State: st.State, ID: st.ConnectorID,
				Reason: fmt.Sprintf("Online with ID %s, but no heartbeat to the control plane since %s (last %s)", st.ConnectorID, start.UTC().Format(time.TimeOnly), st.LastHeartbeat.UTC().Format(time.TimeOnly))}
		case online:
			v = Verdict{State: st.State, ID: st.ConnectorID,
				Reason: fmt.Sprintf("Online with ID %s for %s, not yet steady (%s with a heartbeat)", st.ConnectorID, now.Sub(onlineSince).Round(time.Second), g.steady(st))}
		case st.State == "online":
			v = Verdict{Bad: true, State: st.State, ID: st.ConnectorID,
				Reason: fmt.Sprintf("connector Online with ID %s, not %s as before the update", st.ConnectorID, want)}
		case st.State == "needs_recovery" && want != "":
			v = Verdict{Bad: true, State: st.State, ID: st.ConnectorID,
				Reason: fmt.Sprintf("connector needs recovery on %s (%s): it cannot use the identity %s used", g.Version, st.Reason, want)}
		default:
			v = Verdict{State: st.State, ID: st.ConnectorID, Reason: fmt.Sprintf("state %s", st.State)}
			if st.Reason != "" {
				v.Reason += ": " + st.Reason
			}
		}
		if v.OK || v.Bad {
			break
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			v.Reason = fmt.Sprintf("connector not Online after %s: last %s", g.Deadline, v.Reason)
			return v, g.record(p, v)
		case <-t.C:
		}
	}
	if v.OK && g.ESP != nil {
		if err := reconcile.KeepTarget(g.ESP, p, slot.Name(g.Slot)); err != nil {
			g.logf("gate: retiring the entries of slot %s: %v (the updater retries)", p.FromSlot, err)
		}
	}
	if v.Bad && g.MarkBad != nil {
		if err := g.MarkBad(context.Background()); err != nil {
			g.logf("gate: marking the boot entry bad: %v (the tries still run out)", err)
		}
	}
	return v, g.record(p, v)
}

// steady is how long Online must last (Steady, else two heartbeats),
// at most a third of the deadline.
func (g *Gate) steady(st localapi.Status) time.Duration {
	d := g.Steady
	if d <= 0 {
		hb := time.Duration(st.HeartbeatInterval)
		if hb <= 0 {
			hb = 10 * time.Second
		}
		d = 2 * hb
	}
	return min(d, g.Deadline/3)
}

// record appends the attempt to attempts.json.
func (g *Gate) record(p *state.Pending, v Verdict) error {
	g.logf("gate: %s in slot %s: ok=%v bad=%v: %s", g.Version, g.Slot, v.OK, v.Bad, v.Reason)
	if p == nil {
		return nil
	}
	return g.Store.AddAttempt(state.Attempt{At: g.now().UTC(), Slot: g.Slot, Version: g.Version, Entry: g.Entry,
		OK: v.OK, State: v.State, ConnectorID: v.ID, Reason: v.Reason})
}
