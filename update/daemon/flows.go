package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/cdrom"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/install"
	"github.com/vaultpam/appliance/update/reboot"
	"github.com/vaultpam/appliance/update/reconcile"
	"github.com/vaultpam/appliance/update/state"
)

// Source names (localapi.InstallRequest.Source).
const (
	SourceControlPlane = "control_plane"
	SourceCDROM        = "cdrom"
	SourceConsole      = "console"
)

func badRequest(format string, args ...any) error {
	return &localapi.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf(format, args...)}
}

// Install checks req and, when nothing refuses it, starts the install in
// the background and returns: its progress shows in Status. Refusals are
// *install.Refusal (409); the bundle's full check runs in the background
// and a damaged bundle shows as a failed update, still before any write.
func (d *Daemon) Install(ctx context.Context, req localapi.InstallRequest) error {
	ireq := install.Request{Source: req.Source, ConfirmDowngrade: req.ConfirmDowngrade}
	switch req.Source {
	case SourceControlPlane, "":
		ireq.Source = SourceControlPlane
		if req.Dir == "" || req.Target == "" {
			return badRequest("an install from the control plane names dir and target")
		}
		if req.Target != filepath.Base(req.Target) || strings.HasPrefix(req.Target, ".") {
			return badRequest("target %q is not a file name", req.Target)
		}
		dir, err := filepath.EvalSymlinks(req.Dir)
		if err != nil {
			return &install.Refusal{Code: localapi.UpdateCodeNothingHere, Message: fmt.Sprintf("the download %s is not there: %v", req.Dir, err), Hint: "download the update again"}
		}
		incoming, _ := filepath.EvalSymlinks(d.store.IncomingDir())
		if incoming == "" || !strings.HasPrefix(dir, incoming+string(filepath.Separator)) {
			return badRequest("dir %s is not under %s, where downloads go", req.Dir, d.store.IncomingDir())
		}
		ireq.MetadataDir = dir
		ireq.Target = req.Target
	case SourceCDROM:
		if d.finder == nil {
			return &install.Refusal{Code: localapi.UpdateCodeNothingHere, Message: "this updater does not look at the CD-ROM", Hint: "install through the control plane"}
		}
		d.mu.Lock()
		m, err := d.finder.Find()
		d.mu.Unlock()
		if errors.Is(err, cdrom.ErrNone) {
			return &install.Refusal{Code: localapi.UpdateCodeNothingHere, Message: err.Error(), Hint: "insert the update ISO (label VPAM-UPDATE) into the VM's CD-ROM drive"}
		}
		if err != nil {
			return &install.Refusal{Code: localapi.UpdateCodeNothingHere, Message: err.Error(), Hint: "insert the update ISO of a release"}
		}
		ireq.MetadataDir, ireq.Target, ireq.Bundle = m.MetadataDir, m.Target, m.Bundle
	default:
		return badRequest("source %q is not control_plane or cdrom", req.Source)
	}

	d.mu.Lock()
	if d.working != nil || d.rebooting {
		d.mu.Unlock()
		return &install.Refusal{Code: localapi.UpdateCodeBusy, Message: "another install is running", Hint: "wait until it ends; the health screen shows its progress"}
	}
	if d.reconcileErr != "" {
		why := d.reconcileErr
		d.mu.Unlock()
		return &install.Refusal{Code: localapi.UpdateCodeBusy, Message: "the last change is not settled: " + why, Hint: "free space on /data (or repair the data disk); the updater tries again every few seconds"}
	}
	d.working = &localapi.UpdateStatus{State: localapi.UpdateDownloading, Source: ireq.Source, At: d.cfg.Now().UTC(), Reason: "checking the update's signatures"}
	d.mu.Unlock()
	// Checked without the status lock: Check reads the connector's
	// status, and the connector may be reading ours.
	d.checkMu.Lock()
	plan, err := d.installer.Check(ctx, ireq)
	d.checkMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.working = nil
		d.cfg.Logf("updater: refused %s: %v", ireq.Target, err)
		return err
	}
	d.working = &localapi.UpdateStatus{Version: plan.Version, State: localapi.UpdateDownloading, Source: plan.Source, At: d.cfg.Now().UTC(),
		Reason: fmt.Sprintf("checking the bundle of %s against its signature", plan.Version)}
	go d.runInstall(plan)
	return nil
}

// runInstall verifies the whole bundle, then writes it.
func (d *Daemon) runInstall(p *install.Plan) {
	defer p.Close()
	ctx := context.Background()
	set := func(state, reason string) {
		d.mu.Lock()
		d.working = &localapi.UpdateStatus{Version: p.Version, State: state, Reason: reason, Source: p.Source, At: d.cfg.Now().UTC()}
		d.mu.Unlock()
	}
	finish := func(st localapi.UpdateStatus) {
		if err := d.store.SetLast(st); err != nil {
			d.cfg.Logf("updater: recording the result: %v", err)
		}
		d.mu.Lock()
		d.working = nil
		d.cdromKey = "" // look at the CD-ROM again
		d.mu.Unlock()
		d.cfg.Logf("updater: %s %s: %s", st.Version, st.State, st.Reason)
		d.poke()
	}
	if err := d.installer.VerifyBundle(ctx, p); err != nil {
		finish(localapi.UpdateStatus{Version: p.Version, State: localapi.UpdateFailed, Source: p.Source, At: d.cfg.Now().UTC(), Reason: err.Error()})
		return
	}
	set(localapi.UpdateDownloading, fmt.Sprintf("writing %s into slot %s", p.Version, p.To.Name))
	if _, err := d.installer.Write(ctx, p); err != nil {
		finish(localapi.UpdateStatus{Version: p.Version, State: localapi.UpdateFailed, Source: p.Source, At: d.cfg.Now().UTC(),
			Reason: fmt.Sprintf("%v; slot %s still runs %s and nothing boots the other slot", err, d.running, d.version)})
		return
	}
	d.mu.Lock()
	d.working, d.available, d.cdromKey = nil, nil, ""
	d.mu.Unlock()
	d.cfg.Logf("updater: %s installed in slot %s", p.Version, p.To.Name)
	d.poke()
}

// Rollback boots the other slot's good image on trial, once: its entry
// gets a fresh counter, LoaderEntryOneShot names it, and the machine
// reboots at once (the operator asked). When the trial is blessed, the
// newer image is retired so the older one stays the default.
func (d *Daemon) Rollback(ctx context.Context, req localapi.RollbackRequest) error {
	if !req.Confirm {
		return badRequest("a rollback needs confirm: true")
	}
	st, connErr := d.conn.Status(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.working != nil || d.rebooting {
		return &install.Refusal{Code: localapi.UpdateCodeBusy, Message: "an install is running", Hint: "wait until it ends"}
	}
	if d.reconcileErr != "" {
		return &install.Refusal{Code: localapi.UpdateCodeBusy, Message: "the last change is not settled: " + d.reconcileErr, Hint: "free space on /data (or repair the data disk); the updater tries again every few seconds"}
	}
	if p, err := d.store.Pending(); err != nil {
		return err
	} else if p != nil {
		return &install.Refusal{Code: localapi.UpdateCodeBusy, Message: fmt.Sprintf("another change is in progress: %s of %s to slot %s (%s)", p.Kind, p.Version, p.Slot, p.Stage), Hint: "wait until it ends"}
	}
	if durable, fstype, err := d.store.Durable(); err != nil {
		return err
	} else if !durable {
		return &install.Refusal{Code: localapi.UpdateCodeNoDurable, Message: fmt.Sprintf("no rollback while /data is not durable (%s): the rollback's record would be lost at the reboot", fstype), Hint: "repair the data disk (VPAM-DATA) first"}
	}
	other := string(d.running.Other())
	es, err := d.esp.ForSlot(other)
	if err != nil {
		return err
	}
	if len(es) == 0 || es[0].Counted {
		return &install.Refusal{Code: localapi.UpdateCodeNothingHere, Message: fmt.Sprintf("slot %s holds no image that booted well", other), Hint: "there is nothing to roll back to"}
	}
	e := es[0]
	if connErr != nil || st.ConnectorID == "" {
		return &install.Refusal{Code: install.CodeNotEnrolled, Message: fmt.Sprintf("the connector's identity is not known (%v)", connErr), Hint: "the rollback's health check needs the connector running and enrolled"}
	}
	now := d.cfg.Now().UTC()
	p := &state.Pending{Kind: state.KindRollback, Version: e.Version, Slot: other, FromVersion: d.version, FromSlot: string(d.running),
		Stage: state.StageInstalled, ConnectorID: st.ConnectorID, Source: SourceConsole, Started: now, Updated: now}
	if err := d.store.SetPending(p); err != nil {
		return err
	}
	name, err := d.esp.Recount(e, esp.Tries)
	if err == nil {
		ne, _ := esp.Parse(name)
		p.UKI = name
		if err = d.vars.Delete(esp.VarDefault); err == nil {
			err = d.vars.Set(esp.VarOneShot, ne.ID())
		}
	}
	if err == nil {
		err = d.store.SetPending(p)
	}
	if err != nil {
		if ne, ok := d.esp.Find(name); ok {
			d.esp.Recount(ne, -1)
		}
		d.store.ClearPending()
		return fmt.Errorf("preparing the rollback: %w", err)
	}
	d.cfg.Logf("updater: rollback to %s in slot %s: rebooting", e.Version, other)
	d.poke()
	return nil
}

// step looks at the pending change: a trial is reconciled until it is
// blessed; an installed change reboots when the window allows.
func (d *Daemon) step(ctx context.Context) {
	d.mu.Lock()
	busy := d.working != nil || d.rebooting
	unreconciled := d.reconcileErr != ""
	d.mu.Unlock()
	if busy {
		return
	}
	if unreconciled {
		if _, err := d.reconcile(); err != nil {
			return
		}
	}
	p, err := d.store.Pending()
	d.noteStepError(err)
	if err != nil || p == nil {
		return
	}
	if p.Stage == state.StageTrial || string(d.running) == p.Slot {
		if res, err := d.reconcile(); err == nil && res.Outcome == reconcile.Succeeded {
			d.cfg.Logf("updater: %s", res.Status.Reason)
		}
		return
	}
	if p.Stage != state.StageInstalled {
		return
	}
	if p.Kind != state.KindRollback {
		w, err := readWindow(d.cfg.ConnectorConfig)
		if err != nil {
			d.cfg.Logf("updater: %v; waiting", err)
			return
		}
		if !w.Open(d.cfg.Now()) {
			return
		}
	}
	d.rebootInto(ctx, p)
}

// noteStepError logs err when it differs from the last one step saw (not
// on every tick).
func (d *Daemon) noteStepError(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	d.mu.Lock()
	changed := msg != d.stepErr
	d.stepErr = msg
	d.mu.Unlock()
	if changed && err != nil {
		d.cfg.Logf("updater: %v", err)
	}
}

// rebootInto drains the connector and reboots.
func (d *Daemon) rebootInto(ctx context.Context, p *state.Pending) {
	d.mu.Lock()
	d.rebooting = true
	d.mu.Unlock()
	p.Stage, p.BootID, p.Updated = state.StageRebooting, d.bootID, d.cfg.Now().UTC()
	if err := d.store.SetPending(p); err != nil {
		d.cfg.Logf("updater: %v; not rebooting", err)
		d.mu.Lock()
		d.rebooting = false
		d.mu.Unlock()
		return
	}
	d.cfg.Logf("updater: draining sessions, then rebooting into %s in slot %s", p.Version, p.Slot)
	(&reboot.Drainer{Socket: d.cfg.ConnectorSocket, Grace: d.cfg.DrainGrace, Logf: d.cfg.Logf}).Drain(ctx)
	rb := d.cfg.Reboot
	if rb == nil {
		rb = func(ctx context.Context) error { return exec.CommandContext(ctx, "systemctl", "reboot").Run() }
	}
	if err := rb(ctx); err != nil {
		d.cfg.Logf("updater: reboot: %v", err)
		d.mu.Lock()
		d.rebooting = false
		d.mu.Unlock()
		p.Stage = state.StageInstalled
		d.store.SetPending(p)
	}
}

// checkCDROM offers the update on the CD-ROM when it would install, or
// says in the status why not.
func (d *Daemon) checkCDROM(ctx context.Context) {
	d.mu.Lock()
	if d.working != nil || d.rebooting {
		d.mu.Unlock()
		return
	}
	m, err := d.finder.Find()
	if err != nil {
		d.available, d.cdromWhy, d.cdromKey = nil, nil, ""
		if !errors.Is(err, cdrom.ErrNone) {
			d.cdromWhy = &localapi.UpdateStatus{State: localapi.UpdateFailed, Source: SourceCDROM, At: d.cfg.Now().UTC(), Reason: err.Error()}
		}
		d.mu.Unlock()
		return
	}
	key := m.Device + "|" + m.Target
	if fi, err := os.Stat(m.Bundle); err == nil {
		key += fmt.Sprintf("|%d|%d", fi.Size(), fi.ModTime().UnixNano())
	}
	if key == d.cdromKey {
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d.checkMu.Lock()
	plan, err := d.installer.Check(ctx, install.Request{Source: SourceCDROM, MetadataDir: m.MetadataDir, Target: m.Target, Bundle: m.Bundle})
	d.checkMu.Unlock()
	plan.Close() // only looked at: POST /v1/install checks it again

	d.mu.Lock()
	defer d.mu.Unlock()
	d.available, d.cdromWhy, d.cdromKey = nil, nil, key
	if err != nil {
		var r *install.Refusal
		if errors.As(err, &r) && r.Code == localapi.UpdateCodeBusy {
			d.cdromKey = "" // look again once the change in progress ended
			return
		}
		if errors.As(err, &r) && (r.Code == localapi.UpdateCodeNotNewer || r.Code == localapi.UpdateCodeFailedOnce) {
			// The ISO of the running (or an older) release left in the
			// drive, or of the release that just rolled back: nothing to
			// offer, and the last update's result (which says why) stays
			// visible.
			d.cfg.Logf("updater: the CD-ROM holds %s: %v", m.Target, err)
			return
		}
		d.cdromWhy = &localapi.UpdateStatus{State: localapi.UpdateFailed, Source: SourceCDROM, At: d.cfg.Now().UTC(),
			Reason: fmt.Sprintf("the update on the CD-ROM (%s) is not offered: %v", m.Target, err)}
		return
	}
	d.available = &localapi.Available{Version: plan.Version, Source: SourceCDROM}
	d.cfg.Logf("updater: update %s available on the CD-ROM", plan.Version)
}
