package reconcile

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/internal/updatetest"
	"github.com/vaultpam/appliance/update/slot"
	"github.com/vaultpam/appliance/update/state"
)

// box is the boot-relevant state of an appliance: ESP entries, EFI
// variables, /data/update. Its Boot uses the systemd-boot model of
// updatetest; the reconciler runs as the updater would at start.
type box struct {
	t     *testing.T
	esp   string
	vars  esp.Vars
	store *state.Store
	boot  int
	// versions of the images in each slot
	images map[string]string
}

func newBox(t *testing.T, entries ...string) *box {
	b := &box{t: t, esp: t.TempDir(), vars: esp.Vars{Dir: t.TempDir()}, images: map[string]string{}}
	var err error
	if b.store, err = state.Open(filepath.Join(t.TempDir(), "update")); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		os.WriteFile(filepath.Join(b.esp, e), []byte(e), 0o644)
		en, _ := esp.Parse(e)
		b.images[en.Slot] = en.Version
	}
	return b
}

func (b *box) names() string {
	d, _ := os.ReadDir(b.esp)
	var n []string
	for _, e := range d {
		n = append(n, e.Name())
	}
	return strings.Join(n, " ")
}

// powerOn boots and reconciles; it returns the booted entry and the result.
func (b *box) powerOn() (esp.Entry, Result) {
	b.t.Helper()
	b.boot++
	e := updatetest.Boot(b.t, b.esp, b.vars)
	r := &Reconciler{Store: b.store, ESP: &esp.Dir{Path: b.esp}, Vars: b.vars, Running: slot.Name(e.Slot),
		RunningVersion: e.Version, BootID: "boot-" + string(rune('0'+b.boot)), Logf: b.t.Logf}
	res, err := r.Run()
	if err != nil {
		b.t.Fatalf("reconcile: %v", err)
	}
	return e, res
}

// gateFails records a failed gate attempt on the running trial.
func (b *box) gateFails(e esp.Entry, reason string) {
	b.store.AddAttempt(state.Attempt{At: time.Now(), Slot: e.Slot, Version: e.Version, Entry: e.Name, Reason: reason})
}

func (b *box) pend(p state.Pending) {
	if p.FromVersion == "" {
		p.FromVersion = b.images[p.FromSlot]
	}
	if err := b.store.SetPending(&p); err != nil {
		b.t.Fatal(err)
	}
}

func TestUpdateSucceeds(t *testing.T) {
	b := newBox(t, "vaultpam-0.1.0-A.efi", "vaultpam-0.2.0-B+3.efi")
	b.pend(state.Pending{Kind: state.KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageRebooting, BootID: "boot-0", ConnectorID: "c1"})
	e, res := b.powerOn()
	if e.Slot != "B" || res.Outcome != Trial {
		t.Fatalf("boot 1: %s, %s; want slot B on trial", e.Name, res.Outcome)
	}
	if p, _ := b.store.Pending(); p.Stage != state.StageTrial {
		t.Errorf("stage = %s, want trial", p.Stage)
	}
	updatetest.Bless(t, b.esp, e) // the gate passed; systemd-bless-boot good
	r := &Reconciler{Store: b.store, ESP: &esp.Dir{Path: b.esp}, Vars: b.vars, Running: "B", RunningVersion: "0.2.0"}
	res, err := r.Run()
	if err != nil || res.Outcome != Succeeded || res.Status.State != localapi.UpdateSucceeded {
		t.Fatalf("after bless: %+v %v, want succeeded", res, err)
	}
	if got := b.names(); got != "vaultpam-0.1.0-A.efi vaultpam-0.2.0-B.efi" {
		t.Errorf("ESP = %s", got)
	}
	if p, _ := b.store.Pending(); p != nil {
		t.Errorf("pending = %+v, want none", p)
	}
	if e, _ := b.powerOn(); e.Name != "vaultpam-0.2.0-B.efi" {
		t.Errorf("next boot = %s, want the blessed B", e.Name)
	}
}

func TestNeverOnlineRollsBack(t *testing.T) {
	b := newBox(t, "vaultpam-0.1.0-A.efi", "vaultpam-0.2.0-B+3.efi")
	b.pend(state.Pending{Kind: state.KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageRebooting, BootID: "boot-0", BundleSHA256: "ab"})
	for i := 1; i <= 3; i++ {
		e, res := b.powerOn()
		if e.Slot != "B" || res.Outcome != Trial {
			t.Fatalf("boot %d: %s %s, want slot B on trial", i, e.Name, res.Outcome)
		}
		b.gateFails(e, "connector not Online after 5m0s: last state reconnecting (test build: never goes online)")
	}
	e, res := b.powerOn()
	if e.Slot != "A" || res.Outcome != RolledBack {
		t.Fatalf("boot 4: %s %s, want slot A and rolled_back", e.Name, res.Outcome)
	}
	st := res.Status
	if st.State != localapi.UpdateRolledBack || !strings.Contains(st.Reason, "connector not Online after 5m0s") {
		t.Errorf("status = %+v", st)
	}
	t.Logf("reason: %s", st.Reason)
	f, _ := b.store.FailedVersion("0.2.0")
	if f == nil || !strings.Contains(f.Reason, "not Online") {
		t.Errorf("failed.json has %+v, want 0.2.0 with the gate's reason", f)
	}
	if got := b.names(); got != "vaultpam-0.1.0-A.efi vaultpam-0.2.0-B+0-3.efi.retired" {
		t.Errorf("ESP = %s", got)
	}
	if last, _ := b.store.Last(); last == nil || last.State != localapi.UpdateRolledBack {
		t.Errorf("last.json = %+v", last)
	}
	if e, res := b.powerOn(); e.Slot != "A" || res.Outcome != Nothing {
		t.Errorf("boot 5: %s %s, want slot A, nothing pending", e.Name, res.Outcome)
	}
}

func TestBrokenSlotNeverReachesTheGate(t *testing.T) {
	b := newBox(t, "vaultpam-0.1.0-A.efi", "vaultpam-0.2.0-B+3.efi")
	b.pend(state.Pending{Kind: state.KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageRebooting})
	for i := 0; i < 3; i++ {
		updatetest.Boot(t, b.esp, b.vars) // kernel panic: nothing runs
	}
	_, res := b.powerOn()
	if res.Outcome != RolledBack || !strings.Contains(res.Status.Reason, "never reached the health check") {
		t.Errorf("result = %+v", res.Status)
	}
}

func TestInterruptedInstall(t *testing.T) {
	b := newBox(t, "vaultpam-0.1.0-A.efi", "vaultpam-0.2.0-B.efi.part")
	b.pend(state.Pending{Kind: state.KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageWriting})
	e, res := b.powerOn()
	if e.Slot != "A" || res.Outcome != Failed {
		t.Fatalf("%s %s, want slot A and failed", e.Name, res.Outcome)
	}
	if !strings.Contains(res.Status.Reason, "interrupted") || !strings.Contains(res.Status.Reason, "while writing slot B") {
		t.Errorf("reason = %q", res.Status.Reason)
	}
	if f, _ := b.store.FailedVersion("0.2.0"); f != nil {
		t.Error("an interrupted install marked the version failed; it is not the version's fault")
	}
	if got := b.names(); got != "vaultpam-0.1.0-A.efi" {
		t.Errorf("ESP = %s", got)
	}
}

func TestWaitingForTheWindow(t *testing.T) {
	b := newBox(t, "vaultpam-0.1.0-A.efi", "vaultpam-0.2.0-B+3.efi")
	b.pend(state.Pending{Kind: state.KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageInstalled})
	r := &Reconciler{Store: b.store, ESP: &esp.Dir{Path: b.esp}, Vars: b.vars, Running: "A", RunningVersion: "0.1.0", BootID: "x"}
	res, err := r.Run()
	if err != nil || res.Outcome != Waiting {
		t.Fatalf("%v %v, want waiting", res.Outcome, err)
	}
}

func TestOneShotLost(t *testing.T) {
	// A downgrade: the running 0.3.0 is newer, so only the one-shot
	// variable boots 0.2.0; the firmware lost it.
	b := newBox(t, "vaultpam-0.3.0-A.efi", "vaultpam-0.2.0-B+3.efi")
	b.pend(state.Pending{Kind: state.KindDowngrade, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageRebooting, BootID: "boot-0"})
	e, res := b.powerOn()
	if e.Slot != "A" || res.Outcome != Failed || !strings.Contains(res.Status.Reason, "did not start") {
		t.Fatalf("%s %+v", e.Name, res.Status)
	}
	if got := b.names(); got != "vaultpam-0.3.0-A.efi" {
		t.Errorf("ESP = %s", got)
	}
}

func TestDowngrade(t *testing.T) {
	t.Run("succeeds", func(t *testing.T) {
		b := newBox(t, "vaultpam-0.3.0-A.efi", "vaultpam-0.2.0-B+3.efi")
		b.vars.Set(esp.VarOneShot, "vaultpam-0.2.0-b+3.efi")
		b.pend(state.Pending{Kind: state.KindDowngrade, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageRebooting, BootID: "boot-0"})
		e, res := b.powerOn()
		if e.Slot != "B" || res.Outcome != Trial {
			t.Fatalf("%s %s", e.Name, res.Outcome)
		}
		updatetest.Bless(t, b.esp, e)
		r := &Reconciler{Store: b.store, ESP: &esp.Dir{Path: b.esp}, Vars: b.vars, Running: "B", RunningVersion: "0.2.0"}
		if res, _ := r.Run(); res.Outcome != Succeeded {
			t.Fatalf("%s", res.Outcome)
		}
		if got := b.names(); got != "vaultpam-0.2.0-B.efi vaultpam-0.3.0-A.efi.retired" {
			t.Errorf("ESP = %s (the newer image must be retired or it boots next time)", got)
		}
		if e, _ := b.powerOn(); e.Slot != "B" {
			t.Errorf("next boot: %s, want B", e.Name)
		}
	})
	t.Run("fails", func(t *testing.T) {
		b := newBox(t, "vaultpam-0.3.0-A.efi", "vaultpam-0.2.0-B+3.efi")
		b.vars.Set(esp.VarOneShot, "vaultpam-0.2.0-b+3.efi")
		b.pend(state.Pending{Kind: state.KindDowngrade, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageRebooting, BootID: "boot-0"})
		e, _ := b.powerOn()
		b.gateFails(e, "connector not Online after 5m0s")
		e, res := b.powerOn()
		if e.Slot != "A" || res.Outcome != RolledBack {
			t.Fatalf("%s %s, want A, rolled_back", e.Name, res.Outcome)
		}
	})
}

func TestManualRollback(t *testing.T) {
	setup := func(t *testing.T) *box {
		b := newBox(t, "vaultpam-0.1.0-A.efi", "vaultpam-0.2.0-B.efi")
		// What the daemon does for POST /v1/rollback.
		d := &esp.Dir{Path: b.esp}
		e, _ := d.Find("vaultpam-0.1.0-A.efi")
		name, err := d.Recount(e, esp.Tries)
		if err != nil {
			t.Fatal(err)
		}
		ne, _ := esp.Parse(name)
		b.vars.Set(esp.VarOneShot, ne.ID())
		b.pend(state.Pending{Kind: state.KindRollback, Version: "0.1.0", Slot: "A", FromSlot: "B", Stage: state.StageRebooting, BootID: "boot-0"})
		return b
	}
	t.Run("succeeds", func(t *testing.T) {
		b := setup(t)
		e, res := b.powerOn()
		if e.Slot != "A" || res.Outcome != Trial {
			t.Fatalf("%s %s", e.Name, res.Outcome)
		}
		updatetest.Bless(t, b.esp, e)
		r := &Reconciler{Store: b.store, ESP: &esp.Dir{Path: b.esp}, Vars: b.vars, Running: "A", RunningVersion: "0.1.0"}
		if res, _ := r.Run(); res.Outcome != Succeeded {
			t.Fatalf("%s", res.Outcome)
		}
		if got := b.names(); got != "vaultpam-0.1.0-A.efi vaultpam-0.2.0-B.efi.retired" {
			t.Errorf("ESP = %s", got)
		}
		if e, _ := b.powerOn(); e.Slot != "A" {
			t.Errorf("next boot %s, want A", e.Name)
		}
	})
	t.Run("fails", func(t *testing.T) {
		b := setup(t)
		e, _ := b.powerOn()
		b.gateFails(e, "connector not Online after 5m0s")
		e, res := b.powerOn()
		if e.Slot != "B" || res.Outcome != Failed || !strings.Contains(res.Status.Reason, "rollback to 0.1.0") {
			t.Fatalf("%s %+v", e.Name, res.Status)
		}
		if got := b.names(); got != "vaultpam-0.1.0-A.efi vaultpam-0.2.0-B.efi" {
			t.Errorf("ESP = %s, want both images good again", got)
		}
		if f, _ := b.store.FailedVersion("0.1.0"); f != nil {
			t.Error("a failed manual rollback marked the old version failed")
		}
	})
}

// TestInvalidRecordNeverRetiresTheRunningSlot: a record whose origin is
// the running slot (forged, or any bug) must not make "succeeded" retire
// the running slot's only boot entry; a record naming no real slot is
// ended without touching the ESP. Before the fix the entry was retired
// and nothing booted at the next power-on.
func TestInvalidRecordNeverRetiresTheRunningSlot(t *testing.T) {
	for _, p := range []state.Pending{
		{Kind: state.KindDowngrade, Version: "0.1.0", Slot: "A", FromSlot: "A", Stage: state.StageTrial},
		{Kind: state.KindRollback, Version: "0.1.0", Slot: "A", FromSlot: "", Stage: state.StageTrial},
		{Kind: state.KindUpdate, Version: "0.1.0", Slot: "C", FromSlot: "A", Stage: state.StageWriting},
		{Kind: "wipe", Version: "0.1.0", Slot: "B", FromSlot: "A", Stage: state.StageWriting},
	} {
		b := newBox(t, "vaultpam-0.1.0-A.efi", "vaultpam-0.0.9-B.efi")
		b.pend(p)
		e, res := b.powerOn()
		if b.names() != "vaultpam-0.0.9-B.efi vaultpam-0.1.0-A.efi" {
			t.Errorf("record %+v: ESP now %q, want both entries untouched", p, b.names())
		}
		if res.Outcome != Failed || res.Status == nil || !strings.Contains(res.Status.Reason, "not valid") {
			t.Errorf("record %+v: outcome %s %+v, want failed: not valid", p, res.Outcome, res.Status)
		}
		if pend, _ := b.store.Pending(); pend != nil {
			t.Errorf("record %+v still pending", p)
		}
		if e.Slot != "A" {
			t.Errorf("booted %s", e.Name)
		}
	}
}

// TestDamagedRecordsDoNotStopReconcile: a failed.json that does not decode
// is moved aside and the rollback is reconciled (the failed version
// recorded afresh, its entry retired); a pending.json that does not decode
// ends the change as failed without touching the ESP. Before the fix each
// was an error at every start: the updater never started and the
// exhausted entry was never retired.
func TestDamagedRecordsDoNotStopReconcile(t *testing.T) {
	b := newBox(t, "vaultpam-0.1.0-A.efi", "vaultpam-0.2.0-B+0-3.efi")
	b.pend(state.Pending{Kind: state.KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageTrial})
	os.WriteFile(filepath.Join(b.store.Dir, "failed.json"), []byte(`[{"version":"0.1.9"`), 0o600)
	r := &Reconciler{Store: b.store, ESP: &esp.Dir{Path: b.esp}, Vars: b.vars, Running: "A", RunningVersion: "0.1.0"}
	res, err := r.Run()
	if err != nil || res.Outcome != RolledBack {
		t.Fatalf("Run with a damaged failed.json = %s, %v; want rolled_back", res.Outcome, err)
	}
	if f, _ := b.store.FailedVersion("0.2.0"); f == nil {
		t.Error("0.2.0 not in the new failed.json")
	}
	if b.names() != "vaultpam-0.1.0-A.efi vaultpam-0.2.0-B+0-3.efi.retired" {
		t.Errorf("ESP = %s", b.names())
	}
	if m, _ := filepath.Glob(filepath.Join(b.store.Dir, "failed.json.corrupt-*")); len(m) != 1 {
		t.Errorf("failed.json not kept aside: %v", m)
	}

	b = newBox(t, "vaultpam-0.1.0-A.efi", "vaultpam-0.2.0-B+3.efi")
	os.WriteFile(filepath.Join(b.store.Dir, "pending.json"), []byte("{\"kind\":\"upd"), 0o600)
	r = &Reconciler{Store: b.store, ESP: &esp.Dir{Path: b.esp}, Vars: b.vars, Running: "A", RunningVersion: "0.1.0"}
	res, err = r.Run()
	if err != nil || res.Outcome != Failed || res.Status == nil || !strings.Contains(res.Status.Reason, "moved aside") {
		t.Fatalf("Run with a damaged pending.json = %s %+v, %v; want failed: moved aside", res.Outcome, res.Status, err)
	}
	if last, _ := b.store.Last(); last == nil || last.State != localapi.UpdateFailed {
		t.Errorf("last = %+v", last)
	}
	if b.names() != "vaultpam-0.1.0-A.efi vaultpam-0.2.0-B+3.efi" {
		t.Errorf("ESP = %s, want untouched", b.names())
	}
	if res, err := r.Run(); err != nil || res.Outcome != Nothing {
		t.Errorf("second Run = %s, %v; want nothing", res.Outcome, err)
	}
}

// tinyData mounts a 256 KiB tmpfs and returns a store in it and a
// function that fills it up.
func tinyData(t *testing.T) (*state.Store, func(), func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (a tmpfs)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	store, err := state.Open(filepath.Join(dir, "update"))
	if err != nil {
		t.Fatal(err)
	}
	fill := filepath.Join(dir, "fill")
	return store, func() { exec.Command("dd", "if=/dev/zero", "of="+fill, "bs=4k").Run() }, func() { os.Remove(fill) }
}

// TestDataFullOnTrialBoot: /data is full at the new slot's first boot;
// reconcile cannot record the stage trial but still reports the trial
// (the gate decides; a failed trial leaves tried entries the old slot
// reads). Before the fix Run failed and the updater did not start.
func TestDataFullOnTrialBoot(t *testing.T) {
	store, fill, _ := tinyData(t)
	store.SetPending(&state.Pending{Kind: state.KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageRebooting, ConnectorID: "c1"})
	fill()
	espDir := t.TempDir()
	os.WriteFile(filepath.Join(espDir, "vaultpam-0.1.0-A.efi"), nil, 0o644)
	os.WriteFile(filepath.Join(espDir, "vaultpam-0.2.0-B+2-1.efi"), nil, 0o644)
	r := &Reconciler{Store: store, ESP: &esp.Dir{Path: espDir}, Vars: esp.Vars{Dir: t.TempDir()}, Running: "B", RunningVersion: "0.2.0", Logf: t.Logf}
	res, err := r.Run()
	if err != nil || res.Outcome != Trial {
		t.Errorf("reconcile on the trial boot with /data full = %s, %v; want trial", res.Outcome, err)
	}
}

// TestBlessedTargetWhileTheOldSlotRuns: a downgrade or rollback whose
// target was blessed (its gate passed) but the slot it left booted again
// (the retirement did not happen) is a success: nothing into failed.json,
// the blessed entry kept. Before the fix it was reported rolled_back, its
// version put into failed.json and its good entry retired.
func TestBlessedTargetWhileTheOldSlotRuns(t *testing.T) {
	for _, kind := range []state.Kind{state.KindDowngrade, state.KindRollback} {
		b := newBox(t, "vaultpam-0.3.0-A.efi", "vaultpam-0.2.0-B.efi")
		b.pend(state.Pending{Kind: kind, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageTrial, BootID: "boot-0"})
		e, res := b.powerOn()
		if e.Slot != "A" {
			t.Fatalf("booted %s", e.Name)
		}
		if res.Outcome != Succeeded || res.Status == nil || !strings.Contains(res.Status.Reason, "marked good") {
			t.Errorf("%s: outcome %s %+v, want succeeded", kind, res.Outcome, res.Status)
		}
		if f, _ := b.store.FailedVersion("0.2.0"); f != nil {
			t.Errorf("%s: 0.2.0 in failed.json", kind)
		}
		if b.names() != "vaultpam-0.2.0-B.efi vaultpam-0.3.0-A.efi" {
			t.Errorf("%s: ESP = %s, want both entries kept", kind, b.names())
		}
	}
}
