package install

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/internal/updatetest"
	"github.com/vaultpam/appliance/update/slot"
	"github.com/vaultpam/appliance/update/state"
	"github.com/vaultpam/appliance/update/trust"
)

const rootBytes = 1 << 20

// env is an appliance running 0.1.0 from slot A: a GPT disk with slot A
// written, an ESP directory with A's UKI, EFI variables, /data/update and
// a release repository whose root the image trusts.
type env struct {
	disk    *updatetest.Disk
	repo    *updatetest.Repo
	running updatetest.Image
	espDir  string
	vars    esp.Vars
	store   *state.Store
	in      *Installer
	now     time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{now: time.Now().UTC()}
	e.running = updatetest.MakeImage(t, "0.1.0", rootBytes)
	e.disk = updatetest.NewDisk(t, e.running)
	e.repo = updatetest.NewRepo(t, func() time.Time { return e.now })
	e.espDir = t.TempDir()
	copyFile(t, e.running.UKI, filepath.Join(e.espDir, "vaultpam-0.1.0-A.efi"))
	e.vars = esp.Vars{Dir: t.TempDir()}
	var err error
	e.store, err = state.Open(filepath.Join(t.TempDir(), "update"))
	if err != nil {
		t.Fatal(err)
	}
	e.in = &Installer{
		Disk: e.disk.Disk, ESP: &esp.Dir{Path: e.espDir}, Vars: e.vars, Store: e.store,
		Verifier:       &trust.Verifier{BakedRoot: e.repo.Root, StateDir: e.store.TUFDir(), Now: func() time.Time { return e.now }},
		RunningVersion: "0.1.0",
		ConnectorID:    func(context.Context) (string, error) { return "conn-1234", nil },
		Now:            func() time.Time { return e.now },
		Logf:           t.Logf,
	}
	return e
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *env) espNames(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(e.espDir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, d := range entries {
		n = append(n, d.Name())
	}
	return n
}

// install runs Check, VerifyBundle and Write.
func (e *env) install(t *testing.T, req Request) (*state.Pending, error) {
	t.Helper()
	ctx := context.Background()
	p, err := e.in.Check(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := e.in.VerifyBundle(ctx, p); err != nil {
		return nil, err
	}
	return e.in.Write(ctx, p)
}

func TestInstallWritesTheOtherSlot(t *testing.T) {
	e := newEnv(t)
	dir, target, im := e.repo.Offered(t, "0.2.0", rootBytes)
	snap := e.disk.Snapshot(t)
	runningUKI, _ := os.ReadFile(filepath.Join(e.espDir, "vaultpam-0.1.0-A.efi"))
	e.vars.Set(esp.VarDefault, "vaultpam-0.1.0-a.efi") // someone pressed d in the menu

	p, err := e.install(t, Request{Source: "control_plane", MetadataDir: dir, Target: target})
	if err != nil {
		t.Fatalf("install = %v", err)
	}
	if p.Stage != state.StageInstalled || p.Slot != "B" || p.FromSlot != "A" || p.Version != "0.2.0" || p.ConnectorID != "conn-1234" || p.UKI != "vaultpam-0.2.0-B+3.efi" {
		t.Errorf("pending = %+v", p)
	}
	got, _ := e.store.Pending()
	if got == nil || got.Stage != state.StageInstalled {
		t.Errorf("pending.json = %+v, want stage installed", got)
	}
	// The new slot holds the image and verifies; A, CONFIG, DATA unchanged.
	b := e.disk.Read(t, "VPAM-ROOT-B")
	want, _ := os.ReadFile(im.Root)
	if string(b[:len(want)]) != string(want) {
		t.Error("VPAM-ROOT-B does not hold the new root")
	}
	if out, err := exec.Command("veritysetup", "verify", e.disk.Paths["VPAM-ROOT-B"], e.disk.Paths["VPAM-VERITY-B"], im.RootHash).CombinedOutput(); err != nil {
		t.Errorf("veritysetup verify of slot B: %v\n%s", err, out)
	}
	e.disk.Unchanged(t, snap, "VPAM-ROOT-A", "VPAM-VERITY-A", "VPAM-CONFIG", "VPAM-DATA")
	if now, _ := os.ReadFile(filepath.Join(e.espDir, "vaultpam-0.1.0-A.efi")); string(now) != string(runningUKI) {
		t.Error("the running slot's UKI changed")
	}
	if names := strings.Join(e.espNames(t), " "); names != "vaultpam-0.1.0-A.efi vaultpam-0.2.0-B+3.efi" {
		t.Errorf("ESP = %s", names)
	}
	if _, ok, _ := e.vars.Get(esp.VarDefault); ok {
		t.Error("LoaderEntryDefault is still set: it would keep the new slot from being tried")
	}
	if _, ok, _ := e.vars.Get(esp.VarOneShot); ok {
		t.Error("an update (not a downgrade) set LoaderEntryOneShot")
	}
	t.Logf("partitions on loop devices: %v", e.disk.Loop)
}

// TestSameVersionRefusedEvenConfirmed: the running version again, even
// with the operator's confirmation, is refused before anything is
// written: both slots would hold the same verity UUID, the initramfs
// could open the running slot for the other's entry, and the trial would
// be misreported (the running version put into failed.json). Before the
// fix confirm_downgrade let it through.
func TestSameVersionRefusedEvenConfirmed(t *testing.T) {
	e := newEnv(t)
	e.in.RunningVersion = "0.2.0"
	dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
	snap := e.disk.Snapshot(t)
	for _, confirm := range []bool{false, true} {
		_, err := e.install(t, Request{MetadataDir: dir, Target: target, ConfirmDowngrade: confirm})
		wantRefusal(t, err, localapi.UpdateCodeNotNewer)
	}
	if p, _ := e.store.Pending(); p != nil {
		t.Errorf("pending = %+v, want nothing recorded", p)
	}
	e.disk.Unchanged(t, snap, "VPAM-ROOT-B", "VPAM-VERITY-B")
}

func TestDowngradeNeedsConfirmationAndBootsOnce(t *testing.T) {
	e := newEnv(t)
	e.in.RunningVersion = "0.3.0"
	dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
	_, err := e.install(t, Request{MetadataDir: dir, Target: target})
	wantRefusal(t, err, localapi.UpdateCodeNotNewer)
	p, err := e.install(t, Request{MetadataDir: dir, Target: target, ConfirmDowngrade: true})
	if err != nil {
		t.Fatalf("confirmed downgrade = %v", err)
	}
	if p.Kind != state.KindDowngrade {
		t.Errorf("kind = %s, want downgrade", p.Kind)
	}
	if v, ok, _ := e.vars.Get(esp.VarOneShot); !ok || v != "vaultpam-0.2.0-b+3.efi" {
		t.Errorf("LoaderEntryOneShot = %q %v, want vaultpam-0.2.0-b+3.efi", v, ok)
	}
}

func wantRefusal(t *testing.T, err error, code string) *Refusal {
	t.Helper()
	var r *Refusal
	if !errors.As(err, &r) {
		t.Fatalf("err = %v, want a refusal %s", err, code)
	}
	if r.Code != code {
		t.Fatalf("refusal code = %s (%v), want %s", r.Code, r, code)
	}
	if r.Hint == "" {
		t.Errorf("refusal %s has no hint", code)
	}
	return r
}

// TestRefusedBeforeAnyWrite: each bad offer is refused with its code and a
// hint, and nothing is written: both slots, CONFIG, DATA and the ESP are
// byte-identical, no pending record exists.
func TestRefusedBeforeAnyWrite(t *testing.T) {
	type tc struct {
		name  string
		code  string
		setup func(t *testing.T, e *env) Request
	}
	cases := []tc{
		{"flipped byte in root", localapi.UpdateCodeDamaged, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			flip(t, filepath.Join(dir, target), 4096+rootBytes/2)
			return Request{MetadataDir: dir, Target: target}
		}},
		{"flipped byte in uki (the last part)", localapi.UpdateCodeDamaged, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			fi, _ := os.Stat(filepath.Join(dir, target))
			flip(t, filepath.Join(dir, target), int(fi.Size())-2048)
			return Request{MetadataDir: dir, Target: target}
		}},
		{"flipped byte in manifest", localapi.UpdateCodeDamaged, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			flip(t, filepath.Join(dir, target), 1024+40)
			return Request{MetadataDir: dir, Target: target}
		}},
		{"flipped byte in targets.json", localapi.UpdateCodeUntrusted, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			b, _ := os.ReadFile(filepath.Join(dir, "targets.json"))
			b = []byte(strings.Replace(string(b), `"0.2.0"`, `"0.2.1"`, 1))
			os.WriteFile(filepath.Join(dir, "targets.json"), b, 0o644)
			return Request{MetadataDir: dir, Target: target}
		}},
		{"unknown key", localapi.UpdateCodeUntrusted, func(t *testing.T, e *env) Request {
			other := updatetest.NewRepo(t, func() time.Time { return e.now })
			dir, target, _ := other.Offered(t, "0.2.0", rootBytes)
			return Request{MetadataDir: dir, Target: target}
		}},
		{"expired metadata", localapi.UpdateCodeExpired, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			e.now = e.now.Add(trust.TimestampLifetime + time.Hour)
			return Request{MetadataDir: dir, Target: target}
		}},
		{"replayed metadata", localapi.UpdateCodeReplayed, func(t *testing.T, e *env) Request {
			old, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			// A newer offer is seen (and refused for its version), then
			// the older one comes back.
			dirNew, targetNew, _ := e.repo.Offered(t, "0.0.9", rootBytes)
			_, err := e.install(t, Request{MetadataDir: dirNew, Target: targetNew})
			wantRefusal(t, err, localapi.UpdateCodeNotNewer)
			return Request{MetadataDir: old, Target: target}
		}},
		{"older version", localapi.UpdateCodeNotNewer, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.0.9", rootBytes)
			return Request{MetadataDir: dir, Target: target}
		}},
		{"same version", localapi.UpdateCodeNotNewer, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.1.0", rootBytes)
			return Request{MetadataDir: dir, Target: target}
		}},
		{"failed before", localapi.UpdateCodeFailedOnce, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			e.store.AddFailed(state.Failed{Version: "0.2.0", Reason: "connector not Online after 5m0s", At: e.now})
			return Request{MetadataDir: dir, Target: target}
		}},
		{"too big for the slot", localapi.UpdateCodeNoSpace, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", 5<<20)
			return Request{MetadataDir: dir, Target: target}
		}},
		{"truncated bundle", localapi.UpdateCodeDamaged, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			os.Truncate(filepath.Join(dir, target), rootBytes)
			return Request{MetadataDir: dir, Target: target}
		}},
		{"busy", localapi.UpdateCodeBusy, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			e.store.SetPending(&state.Pending{Kind: state.KindRollback, Version: "0.0.5", Slot: "B", FromSlot: "A", Stage: state.StageInstalled})
			return Request{MetadataDir: dir, Target: target}
		}},
		{"connector not enrolled", CodeNotEnrolled, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			e.in.ConnectorID = func(context.Context) (string, error) { return "", nil }
			return Request{MetadataDir: dir, Target: target}
		}},
		{"non-durable /data", localapi.UpdateCodeNoDurable, func(t *testing.T, e *env) Request {
			dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
			if os.Geteuid() != 0 {
				t.Skip("needs root to mount a tmpfs as /data")
			}
			mnt := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt).CombinedOutput(); err != nil {
				t.Skipf("cannot mount a tmpfs: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", mnt).Run() })
			s, _ := state.Open(filepath.Join(mnt, "update"))
			e.in.Store = s
			e.store = s
			return Request{MetadataDir: dir, Target: target}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			req := c.setup(t, e)
			snap := e.disk.Snapshot(t)
			espBefore := strings.Join(e.espNames(t), " ")
			pendingBefore, _ := e.store.Pending()
			_, err := e.install(t, req)
			r := wantRefusal(t, err, c.code)
			t.Logf("refused: %s", r)
			if !strings.Contains(r.Message, "refused") && !strings.Contains(r.Message, "no update") && !strings.Contains(r.Message, "in progress") {
				t.Errorf("message %q does not say it was refused", r.Message)
			}
			e.disk.Unchanged(t, snap, "VPAM-ROOT-A", "VPAM-VERITY-A", "VPAM-ROOT-B", "VPAM-VERITY-B", "VPAM-CONFIG", "VPAM-DATA")
			if after := strings.Join(e.espNames(t), " "); after != espBefore {
				t.Errorf("ESP changed: %s → %s", espBefore, after)
			}
			if p, _ := e.store.Pending(); (p == nil) != (pendingBefore == nil) {
				t.Errorf("pending record changed: %+v", p)
			}
		})
	}
}

func flip(t *testing.T, path string, off int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, int64(off))
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
}

// TestNeverWritesTheRunningSlot: with the running slot's partitions under
// the name of the other slot (a misresolved layout), Write refuses.
func TestNeverWritesTheRunningSlot(t *testing.T) {
	e := newEnv(t)
	dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
	p, err := e.in.Check(context.Background(), Request{MetadataDir: dir, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	snap := e.disk.Snapshot(t)
	p.To.Root = p.From.Root // as if VPAM-ROOT-B pointed at A's partition
	_, err = e.in.Write(context.Background(), p)
	var f *Failure
	if !errors.As(err, &f) || f.Kind != FailGuard {
		t.Fatalf("Write = %v, want a guard failure", err)
	}
	e.disk.Unchanged(t, snap, "VPAM-ROOT-A", "VPAM-VERITY-A")
	// And a plan for the running slot itself.
	p.To = p.From
	if _, err := e.in.Write(context.Background(), p); !errors.As(err, &f) || f.Kind != FailGuard {
		t.Fatalf("Write to the running slot = %v, want a guard failure", err)
	}
	e.disk.Unchanged(t, snap, "VPAM-ROOT-A", "VPAM-VERITY-A")
}

// TestBundleChangedAfterCheck: the file changes between the verifying pass
// and the write (a flipped byte in the root; a medium not copied, as the
// CD-ROM's): the write stops with a damaged failure, the other slot has
// no boot entry, no pending record.
func TestBundleChangedAfterCheck(t *testing.T) {
	e := newEnv(t)
	dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
	ctx := context.Background()
	p, err := e.in.Check(ctx, Request{Source: "cdrom", MetadataDir: dir, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.in.VerifyBundle(ctx, p); err != nil {
		t.Fatal(err)
	}
	flip(t, filepath.Join(dir, target), 4096+100)
	_, err = e.in.Write(ctx, p)
	var f *Failure
	if !errors.As(err, &f) || f.Kind != FailDamaged || f.Step != "write-root" {
		t.Fatalf("Write = %v, want a damaged failure at write-root", err)
	}
	if names := strings.Join(e.espNames(t), " "); names != "vaultpam-0.1.0-A.efi" {
		t.Errorf("ESP = %s, want only A's UKI", names)
	}
	if pend, _ := e.store.Pending(); pend != nil {
		t.Errorf("pending = %+v after a failed write", pend)
	}
}

// TestInstallReplacesAnOldSlotB: slot B held an older, blessed image; its
// UKI goes before the slot is written.
func TestInstallReplacesAnOldSlotB(t *testing.T) {
	e := newEnv(t)
	os.WriteFile(filepath.Join(e.espDir, "vaultpam-0.0.9-B.efi"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(e.espDir, "vaultpam-0.0.8-B+0-3.efi.retired"), []byte("older"), 0o644)
	var seen []string
	e.in.BeforeStep = func(s string) error {
		if s == "write-root" {
			seen = e.espNames(t)
		}
		return nil
	}
	dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
	if _, err := e.install(t, Request{MetadataDir: dir, Target: target}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(seen, " "); got != "vaultpam-0.1.0-A.efi" {
		t.Errorf("ESP while slot B is written = %s, want only A's UKI", got)
	}
	if got := strings.Join(e.espNames(t), " "); got != "vaultpam-0.1.0-A.efi vaultpam-0.2.0-B+3.efi" {
		t.Errorf("ESP = %s", got)
	}
}

var _ = slot.A

// TestDownloadChangedAfterVerifyIsNotWritten: the connector owns its
// download, so it can change it after VerifyBundle: replace it (rename),
// rewrite it in place, or put a FIFO in its place. The install writes the
// bytes that were verified (a copy only root can reach) and never opens
// the path again. Before the fix Write reopened the path after deleting
// the other slot's UKI and zeroing its verity superblock: a swapped file
// destroyed the rollback target, a FIFO blocked the install forever.
func TestDownloadChangedAfterVerifyIsNotWritten(t *testing.T) {
	for _, change := range []string{"renamed over", "rewritten in place", "a FIFO"} {
		t.Run(change, func(t *testing.T) {
			e := newEnv(t)
			dir, target, im := e.repo.Offered(t, "0.2.0", rootBytes)
			ctx := context.Background()
			p, err := e.in.Check(ctx, Request{Source: "control_plane", MetadataDir: dir, Target: target})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := e.in.VerifyBundle(ctx, p); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, target)
			switch change {
			case "renamed over":
				b, _ := os.ReadFile(path)
				for i := 8192; i < 8192+4096; i++ {
					b[i] ^= 0xff
				}
				os.WriteFile(path+".evil", b, 0o644)
				os.Rename(path+".evil", path)
			case "rewritten in place":
				for off := 8192; off < 8192+4096; off += 512 {
					flip(t, path, off)
				}
			case "a FIFO":
				os.Remove(path)
				if err := syscall.Mkfifo(path, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			pend, err := e.in.Write(ctx, p)
			if err != nil {
				t.Fatalf("Write after the download was %s = %v, want the verified bytes written", change, err)
			}
			if pend.Stage != state.StageInstalled {
				t.Errorf("stage %s", pend.Stage)
			}
			if out, err := exec.Command("veritysetup", "verify", e.disk.Paths["VPAM-ROOT-B"], e.disk.Paths["VPAM-VERITY-B"], im.RootHash).CombinedOutput(); err != nil {
				t.Errorf("slot B does not hold the verified image: %v\n%s", err, out)
			}
		})
	}
}

// TestBundleNotARegularFileRefused: a FIFO or a symbolic link where the
// bundle should be is refused by Check at once, before anything is
// written (a FIFO used to block the open forever).
func TestBundleNotARegularFileRefused(t *testing.T) {
	e := newEnv(t)
	dir, target, _ := e.repo.Offered(t, "0.2.0", rootBytes)
	path := filepath.Join(dir, target)
	os.Rename(path, path+".real")
	os.Symlink(path+".real", path)
	_, err := e.in.Check(context.Background(), Request{Source: "control_plane", MetadataDir: dir, Target: target})
	wantRefusal(t, err, localapi.UpdateCodeDamaged)
	os.Remove(path)
	syscall.Mkfifo(path, 0o644)
	_, err = e.in.Check(context.Background(), Request{Source: "control_plane", MetadataDir: dir, Target: target})
	wantRefusal(t, err, localapi.UpdateCodeDamaged)
	if p, _ := e.store.Pending(); p != nil {
		t.Errorf("pending = %+v", p)
	}
}
