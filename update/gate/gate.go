// Package gate is the health gate of a trial boot: the new slot is kept
// (blessed by systemd-bless-boot) only when the connector comes Online
// with the connector ID it had before the update, within a bounded time.
//
// It runs as vaultpam-update-gate.service, ordered before
// boot-complete.target and required by it, on counted boots only (the
// bless-boot generator pulls boot-complete.target in only when
// systemd-boot set LoaderBootCountPath). Its verdicts:
//
//   - Online with the same ID: pass. systemd-bless-boot.service then
//     marks the entry good.
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
	want := ""
	if p != nil {
		want = p.ConnectorID
	} else {
		g.logf("gate: no pending update record (was /data lost?); requiring Online with any connector ID")
	}
	poll := g.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	start := g.now()
	ctx, cancel := context.WithTimeout(ctx, g.Deadline)
	defer cancel()
	v := Verdict{Reason: "connector status never read"}
	for {
		st, err := g.Status(ctx)
		switch {
		case err != nil:
			v.Reason = fmt.Sprintf("connector not reachable: %v", err)
		case st.State == "online" && (want == "" || st.ConnectorID == want):
			v = Verdict{OK: true, State: st.State, ID: st.ConnectorID,
				Reason: fmt.Sprintf("%s in slot %s: connector Online with ID %s after %s", g.Version, g.Slot, st.ConnectorID, g.now().Sub(start).Round(time.Second))}
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

// record appends the attempt to attempts.json.
func (g *Gate) record(p *state.Pending, v Verdict) error {
	g.logf("gate: %s in slot %s: ok=%v bad=%v: %s", g.Version, g.Slot, v.OK, v.Bad, v.Reason)
	if p == nil {
		return nil
	}
	return g.Store.AddAttempt(state.Attempt{At: g.now().UTC(), Slot: g.Slot, Version: g.Version, Entry: g.Entry,
		OK: v.OK, State: v.State, ConnectorID: v.ID, Reason: v.Reason})
}
