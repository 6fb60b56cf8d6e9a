package install

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/atomicfile"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/internal/updatetest"
	"github.com/vaultpam/appliance/update/reconcile"
	"github.com/vaultpam/appliance/update/slot"
	"github.com/vaultpam/appliance/update/state"
	"github.com/vaultpam/appliance/update/trust"
)

// childEnv carries what the writer process needs.
const childEnv = "VAULTPAM_UPDATE_POWERCUT"

type childSpec struct {
	Disk      slot.Disk
	ESP       string
	Vars      string
	State     string
	Root      []byte
	Dir       string
	Target    string
	KillAt    string
	Now       time.Time
	Connector string
	// Durable, when set, is where the writer keeps a copy of the ESP, the
	// EFI variables and the state directory as they are at the start of
	// each install step: every step ends with its writes synced (fsync of
	// the file and its directory, syncfs), so that copy is what survives
	// a power cut that loses every write not yet synced.
	Durable string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(powerCutChild(spec))
	}
	os.Exit(m.Run())
}

// powerCutChild installs and SIGKILLs itself before step KillAt: the
// power goes at that instant (nothing after it runs, no deferred cleanup).
func powerCutChild(specJSON string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	steps := Steps()
	cut := func(step string) error {
		if s.Durable != "" && slices.Contains(steps, step) {
			for name, dir := range map[string]string{"esp": s.ESP, "vars": s.Vars, "state": s.State} {
				dst := filepath.Join(s.Durable, name)
				if err := os.RemoveAll(dst); err != nil {
					return err
				}
				if err := copyTree(dir, dst); err != nil {
					return err
				}
			}
		}
		if step == s.KillAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return nil
	}
	store, err := state.Open(s.State)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	store.BeforeStep = func(st atomicfile.Step) error { return cut("state:" + st.String()) }
	in := &Installer{
		Disk: s.Disk, ESP: &esp.Dir{Path: s.ESP, BeforeStep: cut}, Vars: esp.Vars{Dir: s.Vars}, Store: store,
		Verifier:       &trust.Verifier{BakedRoot: s.Root, StateDir: store.TUFDir(), Now: func() time.Time { return s.Now }},
		RunningVersion: "0.1.0",
		ConnectorID:    func(context.Context) (string, error) { return s.Connector, nil },
		Now:            func() time.Time { return s.Now },
		BeforeStep:     cut,
	}
	ctx := context.Background()
	p, err := in.Check(ctx, Request{MetadataDir: s.Dir, Target: s.Target})
	if err == nil {
		err = in.VerifyBundle(ctx, p)
	}
	if err == nil {
		_, err = in.Write(ctx, p)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, fi.Mode().Perm())
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, fi.Mode().Perm())
		}
		return nil
	})
}

// restoreTree replaces dir's contents with the copy in from.
func restoreTree(t *testing.T, from, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyTree(from, dir); err != nil {
		t.Fatal(err)
	}
}

// cutPoints are where the power goes: before every step of the install,
// halfway through each slot write, inside the pending record's atomic
// write, around the UKI's rename, and after the end.
func cutPoints() []string {
	var pts []string
	for _, s := range Steps() {
		pts = append(pts, s)
		switch s {
		case "record-pending":
			pts = append(pts, "state:write-half", "state:rename")
		case "write-root", "write-verity":
			pts = append(pts, s+"-half")
		case "write-uki":
			pts = append(pts, esp.StepUKIWrite, esp.StepUKISync, esp.StepUKIRename, esp.StepUKISyncFS)
		}
	}
	return append(pts, "never")
}

// TestPowerCutAtEveryStep kills the writing process (SIGKILL) at every
// point of an install and checks what the next boot would find: the
// running slot's partitions and UKI byte-identical, CONFIG and DATA too,
// and the other slot bootable only once it is whole and verified (after
// the UKI's rename); pending.json always decodes.
//
// Each cut runs twice: "kept", where everything the writer did survives
// (a process kill: the page cache is kept), and "lost", where every write
// of the step under way that was not yet synced is lost (a power cut:
// the ESP, the EFI variables and /data/update are put back to what the
// writer had synced when the step began, so a rename not yet followed by
// the directory's fsync is undone, a .part file vanishes, a record
// rewrite is lost). Not modelled: partial loss within a step (some
// unsynced writes kept, others lost), FAT's non-atomic rename (the kernel
// here has no vfat; fsck.fat repairs it at boot), and unsynced writes to
// the slot partitions (nothing boots a slot before its UKI is renamed,
// after the partitions' fsync).
func TestPowerCutAtEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary once per cut point")
	}
	for _, lose := range []bool{false, true} {
		for _, at := range cutPoints() {
			name := "kept/" + at
			if lose {
				name = "lost/" + at
			}
			if lose && at == "never" {
				continue
			}
			t.Run(name, func(t *testing.T) { powerCut(t, at, lose) })
		}
	}
}

// powerCut cuts the power at the cut point at; lose drops the writes the
// step under way had not synced.
func powerCut(t *testing.T, at string, lose bool) {
	e := newEnv(t)
	dir, target, im := e.repo.Offered(t, "0.2.0", rootBytes)
	// Slot B holds an older image (its UKI long retired): its
	// verity superblock names its UUID until the install clears it.
	old := updatetest.MakeImage(t, "0.0.9", rootBytes)
	e.disk.Fill(t, "VPAM-ROOT-B", old.Root)
	e.disk.Fill(t, "VPAM-VERITY-B", old.Verity)
	snap := e.disk.Snapshot(t)
	runningUKI, _ := os.ReadFile(filepath.Join(e.espDir, "vaultpam-0.1.0-A.efi"))
	durable := ""
	if lose {
		durable = t.TempDir()
	}
	spec, _ := json.Marshal(childSpec{Disk: e.disk.Disk, ESP: e.espDir, Vars: e.vars.Dir, State: e.store.Dir,
		Root: e.repo.Root, Dir: dir, Target: target, KillAt: at, Now: e.now, Connector: "conn-1234", Durable: durable})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	out, err := cmd.CombinedOutput()
	killed := false
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			killed = true
		}
	}
	if at != "never" && !killed {
		t.Fatalf("the writer was not killed at %s: %v\n%s", at, err, out)
	}
	if at == "never" && err != nil {
		t.Fatalf("the writer failed: %v\n%s", err, out)
	}
	if lose {
		for name, dir := range map[string]string{"esp": e.espDir, "vars": e.vars.Dir, "state": e.store.Dir} {
			restoreTree(t, filepath.Join(durable, name), dir)
		}
	}

	e.disk.Unchanged(t, snap, "VPAM-ROOT-A", "VPAM-VERITY-A", "VPAM-CONFIG", "VPAM-DATA")
	if now, _ := os.ReadFile(filepath.Join(e.espDir, "vaultpam-0.1.0-A.efi")); string(now) != string(runningUKI) {
		t.Error("the running slot's UKI changed")
	}
	var bEntries []string
	for _, n := range e.espNames(t) {
		if en, ok := esp.Parse(n); ok && en.Slot == "B" {
			bEntries = append(bEntries, n)
		}
	}
	renamed := slices.Index(cutPoints(), at) > slices.Index(cutPoints(), esp.StepUKIRename)
	if lose {
		// The rename is durable once write-uki ended (syncfs).
		renamed = slices.Index(cutPoints(), at) >= slices.Index(cutPoints(), "boot-next")
	}
	// Between the superblock's clearing and the end of the
	// verity write, slot B claims no UUID.
	if i := slices.Index(cutPoints(), at); i > slices.Index(cutPoints(), "clear-verity-superblock") && i <= slices.Index(cutPoints(), "write-verity-half") {
		if sb := e.disk.Read(t, "VPAM-VERITY-B")[:4096]; !bytes.Equal(sb, make([]byte, 4096)) {
			t.Errorf("power cut at %s: VPAM-VERITY-B still has a superblock (%q…) while slot B is half written", at, sb[:8])
		}
	}
	if !renamed && len(bEntries) > 0 {
		t.Errorf("power cut at %s: slot B is bootable (%v) though it may be half written", at, bEntries)
	}
	if renamed {
		if len(bEntries) != 1 || bEntries[0] != "vaultpam-0.2.0-B+3.efi" {
			t.Errorf("power cut at %s: B entries %v, want the +3 entry", at, bEntries)
		}
		if out, err := exec.Command("veritysetup", "verify", e.disk.Paths["VPAM-ROOT-B"], e.disk.Paths["VPAM-VERITY-B"], im.RootHash).CombinedOutput(); err != nil {
			t.Errorf("slot B is bootable but does not verify: %v\n%s", err, out)
		}
		uki, _ := os.ReadFile(filepath.Join(e.espDir, bEntries[0]))
		want, _ := os.ReadFile(im.UKI)
		if string(uki) != string(want) {
			t.Error("slot B's UKI is not the bundle's")
		}
	}
	p, err := e.store.Pending()
	if err != nil {
		t.Errorf("pending.json after the cut: %v", err)
	}
	t.Logf("cut at %-16s ESP: %s; pending: %s", at, strings.Join(e.espNames(t), " "), describe(p))

	// The next power-on: the boot loader picks an entry, the
	// updater reconciles.
	booted := updatetest.Boot(t, e.espDir, e.vars)
	r := &reconcile.Reconciler{Store: e.store, ESP: &esp.Dir{Path: e.espDir}, Vars: e.vars,
		Running: slot.Name(booted.Slot), RunningVersion: booted.Version, BootID: "next"}
	res, err := r.Run()
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	switch {
	case renamed && (booted.Slot != "B" || res.Outcome != reconcile.Trial):
		t.Errorf("next boot: %s, %s; want slot B on trial", booted.Name, res.Outcome)
	case !renamed && booted.Slot != "A":
		t.Errorf("next boot: %s; want slot A", booted.Name)
	case !renamed && p != nil && (res.Outcome != reconcile.Failed || !strings.Contains(res.Status.Reason, "interrupted")):
		t.Errorf("next boot: %s, want failed (interrupted)", res.Outcome)
	case !renamed && strings.Join(e.espNames(t), " ") != "vaultpam-0.1.0-A.efi":
		t.Errorf("after reconcile the ESP holds %s; want only A's UKI", strings.Join(e.espNames(t), " "))
	}
	if res.Status != nil {
		t.Logf("next boot %s: %s: %s", booted.Name, res.Status.State, res.Status.Reason)
	} else {
		t.Logf("next boot %s: %s", booted.Name, res.Outcome)
	}
}

func describe(p *state.Pending) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("%s %s→%s stage %s", p.Kind, p.FromSlot, p.Slot, p.Stage)
}
