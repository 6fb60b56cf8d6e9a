package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/state"
)

// Status is the image and update status (GET /v1/status).
func (d *Daemon) Status() localapi.Image {
	d.mu.Lock()
	defer d.mu.Unlock()
	im := localapi.Image{Version: d.version, Slot: string(d.running), Other: d.otherSlot(), Available: d.available, TrustedRootVersion: d.trustRoot}
	if v := d.installer.Verifier.RootVersion(); v > 0 {
		im.TrustedRootVersion = v
	}
	p, err := d.store.Pending()
	switch {
	case d.working != nil:
		im.Pending = true
		w := *d.working
		im.Update = &w
	case d.reconcileErr != "":
		im.Pending = p != nil
		im.Update = &localapi.UpdateStatus{State: localapi.UpdateFailed,
			Reason: d.reconcileErr + "; the updater tries again every few seconds (free space on /data, or repair the data disk)"}
		if p != nil {
			im.Update.Version, im.Update.Source = p.Version, p.Source
		}
	case err != nil:
		im.Update = &localapi.UpdateStatus{State: localapi.UpdateFailed, Reason: err.Error()}
	case p != nil:
		im.Pending = true
		im.Update = d.pendingStatus(p)
	default:
		if d.cdromWhy != nil {
			w := *d.cdromWhy
			im.Update = &w
		} else if last, err := d.store.Last(); err == nil && last != nil {
			im.Update = last
		}
	}
	if dmg := d.store.Damaged(); len(dmg) > 0 {
		note := "update records damaged: " + strings.Join(dmg, "; ")
		if im.Update == nil {
			im.Update = &localapi.UpdateStatus{State: localapi.UpdateFailed, Reason: note}
		} else {
			u := *im.Update
			u.Reason += " (" + note + ")"
			im.Update = &u
		}
	}
	return im
}

// pendingStatus describes a change in progress for people.
func (d *Daemon) pendingStatus(p *state.Pending) *localapi.UpdateStatus {
	u := &localapi.UpdateStatus{Version: p.Version, Source: p.Source, At: p.Updated}
	what := fmt.Sprintf("%s in slot %s", p.Version, p.Slot)
	if p.Kind == state.KindRollback {
		what = fmt.Sprintf("rollback to %s in slot %s", p.Version, p.Slot)
	}
	switch p.Stage {
	case state.StageWriting:
		u.State, u.Reason = localapi.UpdateDownloading, "writing "+what
	case state.StageInstalled:
		u.State = localapi.UpdateInstalled
		w, err := readWindow(d.cfg.ConnectorConfig)
		switch {
		case p.Kind == state.KindRollback:
			u.Reason = what + ": rebooting now"
		case err != nil:
			u.Reason = fmt.Sprintf("%s installed; the maintenance window is not readable (%v), so it waits", what, err)
		case w.IsZero():
			u.Reason = what + " installed; rebooting at once"
		default:
			u.Reason = fmt.Sprintf("%s installed; reboots in the maintenance window %s UTC (next %s)", what, w, w.Next(d.cfg.Now()).UTC().Format("Mon 2006-01-02 15:04 UTC"))
		}
	case state.StageRebooting:
		u.State, u.Reason = localapi.UpdateRebooting, "draining sessions and rebooting into "+what
	case state.StageTrial:
		u.State = localapi.UpdateRebooting
		attempts, _ := d.store.Attempts(p)
		u.Reason = fmt.Sprintf("%s on trial: waiting for the connector to come Online with the same ID (try %d of %d)", what, len(attempts)+1, esp.Tries)
		if a := d.store.LastAttempt(p); a != nil && !a.OK {
			u.Reason += "; last try: " + a.Reason
		}
		if a := d.store.LastAttempt(p); a != nil && a.OK {
			u.Reason = what + ": Online with the same ID; being marked good"
		}
	}
	return u
}

// otherSlot describes the slot that does not run, from its boot entries.
func (d *Daemon) otherSlot() *localapi.SlotInfo {
	other := string(d.running.Other())
	es, err := d.esp.ForSlot(other)
	if err != nil {
		return nil
	}
	if len(es) > 0 {
		e := es[0]
		s := &localapi.SlotInfo{Slot: other, Version: e.Version, State: "good"}
		switch {
		case e.Exhausted():
			s.State = "failed"
		case e.Counted:
			s.State = "trial"
		}
		return s
	}
	retired, _ := filepath.Glob(filepath.Join(d.esp.Path, "vaultpam-*-"+other+"*"+esp.RetiredSuffix))
	for _, r := range retired {
		if e, ok := esp.Parse(strings.TrimSuffix(filepath.Base(r), esp.RetiredSuffix)); ok {
			if _, err := os.Stat(r); err == nil {
				// Retired: it failed here, or a rollback or downgrade
				// replaced it; either way nothing boots it.
				st := "empty"
				if f, _ := d.store.FailedVersion(e.Version); f != nil {
					st = "failed"
				}
				return &localapi.SlotInfo{Slot: other, Version: e.Version, State: st}
			}
		}
	}
	return &localapi.SlotInfo{Slot: other, State: "empty"}
}
