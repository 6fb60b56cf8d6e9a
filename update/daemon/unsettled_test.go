package daemon

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/state"
)

// TestServesWhileReconcileFails: the previous slot boots after a failed
// trial while /data is full, so reconcile cannot record the rollback.
// The updater still starts and serves its API: the status says why,
// installs are refused as busy; once space is freed the next tick
// reconciles (rolled_back). Before the fix New failed: no API, and
// systemd restarted the updater in a loop.
func TestServesWhileReconcileFails(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a tmpfs)")
	}
	a := newAppliance(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	a.stateDir = filepath.Join(dir, "update")
	store, _ := state.Open(a.stateDir)
	store.SetPending(&state.Pending{Kind: state.KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: state.StageTrial, ConnectorID: "conn-1"})
	os.WriteFile(filepath.Join(a.espDir, "vaultpam-0.2.0-B+0-3.efi"), []byte("uki"), 0o644)
	os.MkdirAll(filepath.Join(a.stateDir, "incoming", "x"), 0o700)
	fill := filepath.Join(dir, "fill")
	exec.Command("dd", "if=/dev/zero", "of="+fill, "bs=4k").Run()

	c := localapi.NewUpdaterClient(a.start("", nil))
	im := waitStatus(t, c, "why reconcile fails", func(im localapi.Image) bool {
		return im.Update != nil && im.Update.State == localapi.UpdateFailed && strings.Contains(im.Update.Reason, "reconciling")
	})
	t.Logf("status while /data is full: %s", im.Update.Reason)
	var e *localapi.Error
	if err := c.Install(context.Background(), localapi.InstallRequest{Source: "control_plane", Dir: filepath.Join(a.stateDir, "incoming", "x"), Target: "x.update"}); !errors.As(err, &e) || e.Code != localapi.UpdateCodeBusy {
		t.Errorf("Install while unsettled = %v, want %s", err, localapi.UpdateCodeBusy)
	}
	os.Remove(fill)
	im = waitStatus(t, c, "rolled_back", func(im localapi.Image) bool {
		return im.Update != nil && im.Update.State == localapi.UpdateRolledBack
	})
	t.Logf("after space was freed: %s", im.Update.Reason)
}
