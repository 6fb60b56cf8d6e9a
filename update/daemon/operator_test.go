package daemon

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/internal/updatetest"
)

// postAsNobody sends one request to the updater's socket from a process
// of another user (nobody, standing for the connector's vaultpam), so
// SO_PEERCRED shows that uid; it returns the HTTP code and the error body.
func postAsNobody(t *testing.T, sock, path string, body any) (int, localapi.ErrorBody) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl (a client process of another user)")
	}
	for d := filepath.Dir(sock); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	os.Chmod(sock, 0o666)
	b, _ := json.Marshal(body)
	out := filepath.Join(t.TempDir(), "out")
	os.Chmod(filepath.Dir(out), 0o777)
	cmd := exec.Command("curl", "-s", "-o", out, "-w", "%{http_code}", "--unix-socket", sock, "-H", "Content-Type: application/json", "--data-binary", string(b), "http://local"+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	code, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl as nobody: %v", err)
	}
	var eb localapi.ErrorBody
	rb, _ := os.ReadFile(out)
	json.Unmarshal(rb, &eb)
	var n int
	json.Unmarshal(code, &n)
	return n, eb
}

// TestOnlyTheOperatorConfirmsDowngradesAndRollsBack: a caller that is
// neither root nor the console's user (the connector, which may use the
// socket to install newer updates) cannot confirm a downgrade to an old,
// still-signed release or force a rollback: 403 update_not_permitted, and
// nothing is recorded. The console's user can roll back. Before the fix
// the updater never looked at the caller and the downgrade installed.
func TestOnlyTheOperatorConfirmsDowngradesAndRollsBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a client of another uid)")
	}
	a := newAppliance(t)
	sock := a.start("", nil)
	old := updatetest.MakeImage(t, "0.0.1", rootBytes)
	path, digest := old.Bundle(t, t.TempDir())
	a.repo.AddBundle(t, path, "0.0.1", digest)
	offer := filepath.Join(a.stateDir, "incoming", "offer-old")
	os.MkdirAll(filepath.Dir(offer), 0o700)
	os.Rename(a.repo.Offer(t, path), offer)

	code, eb := postAsNobody(t, sock, "/v1/install", localapi.InstallRequest{Source: "control_plane", Dir: offer, Target: filepath.Base(path), ConfirmDowngrade: true})
	if code != 403 || eb.Code != localapi.UpdateCodeNotPermitted {
		t.Errorf("install with confirm_downgrade as uid 65534 = %d %+v, want 403 %s", code, eb, localapi.UpdateCodeNotPermitted)
	}
	code, eb = postAsNobody(t, sock, "/v1/rollback", localapi.RollbackRequest{Confirm: true})
	if code != 403 || eb.Code != localapi.UpdateCodeNotPermitted {
		t.Errorf("rollback as uid 65534 = %d %+v, want 403 %s", code, eb, localapi.UpdateCodeNotPermitted)
	}
	if _, err := os.Stat(filepath.Join(a.stateDir, "pending.json")); err == nil {
		t.Error("a change was recorded for a caller that is not the operator")
	}
	// The same caller without the confirmation gets the ordinary refusal.
	code, eb = postAsNobody(t, sock, "/v1/install", localapi.InstallRequest{Source: "control_plane", Dir: offer, Target: filepath.Base(path)})
	if code != 409 || eb.Code != localapi.UpdateCodeNotNewer {
		t.Errorf("install of an older version as uid 65534 = %d %+v, want 409 %s", code, eb, localapi.UpdateCodeNotNewer)
	}

	// The console's user may roll back (here: nothing to roll back to).
	a.stop()
	a.consoleUser = "nobody"
	sock = a.start("", nil)
	code, eb = postAsNobody(t, sock, "/v1/rollback", localapi.RollbackRequest{Confirm: true})
	if code != 409 || eb.Code != localapi.UpdateCodeNothingHere {
		t.Errorf("rollback as the console's user = %d %+v, want 409 %s", code, eb, localapi.UpdateCodeNothingHere)
	}
}
