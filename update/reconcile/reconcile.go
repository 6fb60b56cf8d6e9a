// Package reconcile decides, at every start of the updater, what happened
// to the change recorded in /data/update/pending.json, from three facts:
// the slot that runs, the boot entries on the ESP, and the record itself.
//
//	running the new slot, its entry blessed (no counter)   → succeeded
//	running the new slot, its entry still counted           → trial: the gate decides
//	running the old slot, the new slot's entry blessed
//	  (record rebooting or trial)                           → succeeded (it passed; a restart
//	                                                          came before the old entry was retired)
//	running the old slot, record stage writing, the new
//	  slot's entry never tried                              → interrupted: failed, entry removed
//	running the old slot, the new slot's entry tried
//	  (+2-1 … +0-3) or the record says trial                → rolled_back: version added to
//	                                                          failed.json, its entry retired
//	running the old slot, record installed/rebooting, entry
//	  untried, same boot                                    → still waiting for the reboot
//	… but a reboot happened and the loader did not pick the
//	  new entry                                             → failed (EFI variables lost?)
//
// A manual rollback whose trial fails is reported as failed (the old image
// stays good); an interruption is not the version's fault and does not
// mark it failed.
package reconcile

import (
	"fmt"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/slot"
	"github.com/vaultpam/appliance/update/state"
)

// Outcome is what Run found.
type Outcome int

const (
	Nothing    Outcome = iota // no change pending
	Waiting                   // installed, waiting for the reboot
	Trial                     // the new slot runs on trial; the gate decides
	Succeeded                 // the new slot was blessed and is kept
	RolledBack                // the new slot failed; the old one runs again
	Failed                    // stopped before the new slot ran (interrupted, lost entry, failed manual rollback)
)

func (o Outcome) String() string {
	return [...]string{"nothing", "waiting", "trial", "succeeded", "rolled_back", "failed"}[o]
}

// Reconciler holds the facts. All fields but Now and Logf are required.
type Reconciler struct {
	Store          *state.Store
	ESP            *esp.Dir
	Vars           esp.Vars
	Running        slot.Name
	RunningVersion string
	// BootID identifies this boot (/proc/sys/kernel/random/boot_id).
	BootID string
	Now    func() time.Time
	Logf   func(format string, args ...any)
}

// Result is Run's finding. Pending is the record still in progress (nil
// once the change ended); Status is the last result when it ended now.
type Result struct {
	Outcome Outcome
	Pending *state.Pending
	Status  *localapi.UpdateStatus
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Reconciler) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

// Run reconciles and records the outcome (last.json, failed.json, the
// ESP). It is idempotent: running it again finds the same or a later
// outcome.
func (r *Reconciler) Run() (Result, error) {
	p, err := r.Store.Pending()
	if err != nil {
		return Result{Outcome: Nothing}, err
	}
	if p == nil {
		if lost := r.Store.TakeLostPending(); lost != "" {
			// What was in progress is unknown: nothing on the ESP is
			// touched (a slot that was half written has no entry; a
			// whole one is tried and gated like any other).
			st := localapi.UpdateStatus{State: localapi.UpdateFailed, At: r.now(),
				Reason: fmt.Sprintf("the record of the change in progress was damaged and moved aside (%s): the change ended unknown; %s runs in slot %s", lost, r.RunningVersion, r.Running)}
			if err := r.Store.SetLast(st); err != nil {
				return Result{}, err
			}
			r.logf("update: %s", st.Reason)
			return Result{Outcome: Failed, Status: &st}, nil
		}
		return Result{Outcome: Nothing}, nil
	}
	if why := r.invalid(p); why != "" {
		// Not a record the updater writes: end it without touching the ESP.
		return r.failed(p, fmt.Sprintf("the record of the change in progress is not valid (%s); nothing was changed on the ESP; %s runs in slot %s", why, r.RunningVersion, r.Running), false)
	}
	entry, hasEntry, err := r.entryOf(p.Slot)
	if err != nil {
		return Result{}, err
	}
	if string(r.Running) == p.Slot {
		if hasEntry && !entry.Counted {
			return r.succeeded(p)
		}
		if p.Stage != state.StageTrial {
			p.Stage = state.StageTrial
			p.Updated = r.now()
			if err := r.Store.SetPending(p); err != nil {
				// Not needed for the outcome: a trial that fails leaves a
				// tried entry, which the old slot reads as rolled back.
				// /data may be full; the gate still decides.
				r.logf("update %s: recording the trial: %v (the gate decides anyway)", p.Version, err)
			}
		}
		return Result{Outcome: Trial, Pending: p}, nil
	}
	switch {
	case hasEntry && !entry.Counted && entry.Version == p.Version && (p.Stage == state.StageRebooting || p.Stage == state.StageTrial):
		// The target's entry was blessed (its gate passed), yet the slot
		// the change left runs: it restarted before that slot's entry was
		// retired. Not a failure.
		return r.blessedButLeft(p)
	case hasEntry && (entry.Tried() || p.Stage == state.StageTrial):
		return r.rolledBack(p, entry)
	case p.Stage == state.StageWriting:
		return r.failed(p, fmt.Sprintf("the install of %s was interrupted (power loss or restart) while writing slot %s; slot %s was not touched and still runs %s",
			p.Version, p.Slot, r.Running, r.RunningVersion), true)
	case !hasEntry:
		return r.failed(p, fmt.Sprintf("the boot entry of %s in slot %s is gone; nothing was changed on slot %s", p.Version, p.Slot, r.Running), true)
	case p.Stage == state.StageRebooting && p.BootID != "" && p.BootID != r.BootID:
		return r.failed(p, fmt.Sprintf("the appliance rebooted but the boot loader did not start %s in slot %s (its EFI variables may not have been kept); still on %s", p.Version, p.Slot, r.RunningVersion), true)
	}
	return Result{Outcome: Waiting, Pending: p}, nil
}

// invalid says what is wrong with p, or "": its slots must be A and B
// (different), its kind one the updater writes. Reconcile acts on the ESP
// only for valid records, so a record that names the running slot as the
// one to leave never retires the running slot's entry.
func (r *Reconciler) invalid(p *state.Pending) string {
	switch {
	case p.Kind != state.KindUpdate && p.Kind != state.KindDowngrade && p.Kind != state.KindRollback:
		return fmt.Sprintf("kind %q", p.Kind)
	case !isSlot(p.Slot) || !isSlot(p.FromSlot):
		return fmt.Sprintf("slots %q from %q are not A and B", p.Slot, p.FromSlot)
	case p.Slot == p.FromSlot:
		return fmt.Sprintf("slot %s is both the target and the origin", p.Slot)
	}
	return ""
}

func isSlot(s string) bool { return s == string(slot.A) || s == string(slot.B) }

// entryOf returns slot's boot entry (the first, if several).
func (r *Reconciler) entryOf(s string) (esp.Entry, bool, error) {
	es, err := r.ESP.ForSlot(s)
	if err != nil || len(es) == 0 {
		return esp.Entry{}, false, err
	}
	return es[0], true, nil
}

// KeepTarget makes a passed downgrade or rollback stick: the slot it
// left holds the newer image, which systemd-boot's version order would
// boot next time, so that slot's entries are retired. It does nothing for
// an update, for a record that is not valid, or unless running is the
// change's target: the running slot's own entry is never retired. The
// gate calls it as soon as the trial passes (before a restart could undo
// it); reconcile again when it sees the blessed entry.
func KeepTarget(d *esp.Dir, p *state.Pending, running slot.Name) error {
	if p == nil || (p.Kind != state.KindDowngrade && p.Kind != state.KindRollback) {
		return nil
	}
	if (&Reconciler{}).invalid(p) != "" || p.Slot != string(running) || p.FromSlot == string(running) {
		return nil
	}
	others, err := d.ForSlot(p.FromSlot)
	if err != nil {
		return err
	}
	for _, e := range others {
		if err := d.Retire(e.Name); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reconciler) succeeded(p *state.Pending) (Result, error) {
	if err := KeepTarget(r.ESP, p, r.Running); err != nil {
		return Result{}, err
	}
	why := fmt.Sprintf("%s runs in slot %s, Online with the same connector ID", p.Version, p.Slot)
	if a := r.Store.LastAttempt(p); a != nil && a.OK {
		why = a.Reason
	}
	st := localapi.UpdateStatus{Version: p.Version, State: localapi.UpdateSucceeded, Reason: why, Source: p.Source, At: r.now()}
	return r.end(p, st, Succeeded)
}

// blessedButLeft ends a change whose target passed its gate and was
// marked good while the slot it left runs again.
func (r *Reconciler) blessedButLeft(p *state.Pending) (Result, error) {
	why := fmt.Sprintf("%s in slot %s passed its health check and was marked good, but the appliance restarted into %s in slot %s", p.Version, p.Slot, r.RunningVersion, r.Running)
	if p.Kind == state.KindDowngrade || p.Kind == state.KindRollback {
		why += fmt.Sprintf(" before %s was retired; roll back again to run %s", r.RunningVersion, p.Version)
	}
	st := localapi.UpdateStatus{Version: p.Version, State: localapi.UpdateSucceeded, Reason: why, Source: p.Source, At: r.now()}
	return r.end(p, st, Succeeded)
}

func (r *Reconciler) rolledBack(p *state.Pending, e esp.Entry) (Result, error) {
	reason := fmt.Sprintf("slot %s never reached the health check (it did not boot, %d tries)", p.Slot, e.Done)
	if a := r.Store.LastAttempt(p); a != nil && !a.OK {
		reason = a.Reason
	}
	if p.Kind == state.KindRollback {
		// The older image was good before: give it its good name back.
		if _, err := r.ESP.Recount(e, -1); err != nil {
			return Result{}, err
		}
		st := localapi.UpdateStatus{Version: p.Version, State: localapi.UpdateFailed, Source: p.Source, At: r.now(),
			Reason: fmt.Sprintf("the rollback to %s in slot %s did not come Online (%s); %s in slot %s runs again", p.Version, p.Slot, reason, r.RunningVersion, r.Running)}
		return r.end(p, st, Failed)
	}
	if err := r.Store.AddFailed(state.Failed{Version: p.Version, BundleSHA256: p.BundleSHA256, Reason: reason, At: r.now()}); err != nil {
		return Result{}, err
	}
	if err := r.ESP.Retire(e.Name); err != nil {
		return Result{}, err
	}
	r.Vars.Delete(esp.VarOneShot)
	st := localapi.UpdateStatus{Version: p.Version, State: localapi.UpdateRolledBack, Source: p.Source, At: r.now(),
		Reason: fmt.Sprintf("%s in slot %s failed: %s; back on %s in slot %s; %s will not be installed again automatically", p.Version, p.Slot, reason, r.RunningVersion, r.Running, p.Version)}
	return r.end(p, st, RolledBack)
}

// failed ends a change that never ran: the other slot loses its entries
// (a manual rollback's target keeps its good name).
func (r *Reconciler) failed(p *state.Pending, reason string, clean bool) (Result, error) {
	if clean {
		if p.Kind == state.KindRollback {
			if e, ok, _ := r.entryOf(p.Slot); ok && e.Counted {
				if _, err := r.ESP.Recount(e, -1); err != nil {
					return Result{}, err
				}
			}
		} else if err := r.ESP.RemoveSlot(p.Slot); err != nil {
			return Result{}, err
		}
		r.Vars.Delete(esp.VarOneShot)
	}
	st := localapi.UpdateStatus{Version: p.Version, State: localapi.UpdateFailed, Reason: reason, Source: p.Source, At: r.now()}
	return r.end(p, st, Failed)
}

func (r *Reconciler) end(p *state.Pending, st localapi.UpdateStatus, o Outcome) (Result, error) {
	if err := r.Store.SetLast(st); err != nil {
		return Result{}, err
	}
	if err := r.Store.ClearPending(); err != nil {
		return Result{}, err
	}
	r.logf("update %s: %s: %s", p.Version, st.State, st.Reason)
	return Result{Outcome: o, Status: &st}, nil
}
