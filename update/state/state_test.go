package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
)

func TestRecords(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "update"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s.Pending(); p != nil || err != nil {
		t.Errorf("Pending on an empty store = %v, %v", p, err)
	}
	p := &Pending{Kind: KindUpdate, Version: "0.2.0", Slot: "B", FromSlot: "A", Stage: StageWriting, Started: time.Now().UTC()}
	if err := s.SetPending(p); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(s.Dir, "pending.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("pending.json mode %v, want 0600", fi.Mode().Perm())
	}
	got, _ := s.Pending()
	if got.Version != "0.2.0" || got.Stage != StageWriting {
		t.Errorf("Pending = %+v", got)
	}
	if err := s.ClearPending(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Pending(); got != nil {
		t.Error("still pending after ClearPending")
	}
	s.AddFailed(Failed{Version: "0.2.0", Reason: "not Online"})
	s.AddFailed(Failed{Version: "0.2.0", Reason: "again"})
	all, _ := s.Failed()
	if len(all) != 1 || all[0].Reason != "not Online" {
		t.Errorf("failed.json = %+v, want 0.2.0 once", all)
	}
	s.SetLast(localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateRolledBack})
	if l, _ := s.Last(); l == nil || l.State != localapi.UpdateRolledBack {
		t.Errorf("Last = %+v", l)
	}
	if ok, fstype, err := s.Durable(); err != nil || fstype == "" {
		t.Errorf("Durable = %v %q %v", ok, fstype, err)
	}
}

// TestCorruptRecordIsMovedAsideNotLost: a record that does not decode (a
// bad sector) or that is not the updater's own regular file is moved
// aside, kept byte for byte for people to look at, named in Damaged, and
// the store goes on without it. Before, it was an error at every read:
// the updater could not start (reconcile failed) until someone with a
// shell removed it.
func TestCorruptRecordIsMovedAsideNotLost(t *testing.T) {
	s, _ := Open(filepath.Join(t.TempDir(), "update"))
	os.WriteFile(filepath.Join(s.Dir, "pending.json"), []byte("{not json"), 0o600)
	os.WriteFile(filepath.Join(s.Dir, "failed.json"), []byte(`[{"version":"0.1.9"`), 0o600)
	os.Symlink("/etc/passwd", filepath.Join(s.Dir, "last.json"))
	if p, err := s.Pending(); p != nil || err != nil {
		t.Errorf("Pending = %+v, %v; want none", p, err)
	}
	if f, err := s.Failed(); len(f) != 0 || err != nil {
		t.Errorf("Failed = %+v, %v; want none", f, err)
	}
	if l, err := s.Last(); l != nil || err != nil {
		t.Errorf("Last = %+v, %v; want none", l, err)
	}
	if err := s.AddFailed(Failed{Version: "0.2.0", Reason: "x"}); err != nil {
		t.Errorf("AddFailed after a corrupt failed.json = %v", err)
	}
	m, _ := filepath.Glob(filepath.Join(s.Dir, "pending.json.corrupt-*"))
	if len(m) != 1 {
		t.Fatalf("pending.json moved aside to %v", m)
	}
	if b, _ := os.ReadFile(m[0]); string(b) != "{not json" {
		t.Errorf("the moved record changed: %q", b)
	}
	if l := s.TakeLostPending(); l != filepath.Base(m[0]) {
		t.Errorf("TakeLostPending = %q, want %q", l, filepath.Base(m[0]))
	}
	if l := s.TakeLostPending(); l != "" {
		t.Errorf("TakeLostPending again = %q", l)
	}
	if d := s.Damaged(); len(d) != 3 || !strings.Contains(strings.Join(d, "\n"), "does not decode") || !strings.Contains(strings.Join(d, "\n"), "symbolic link") {
		t.Errorf("Damaged = %q", d)
	}
	if m, _ := filepath.Glob(filepath.Join(s.Dir, "last.json.untrusted-*")); len(m) != 1 {
		t.Errorf("the symlinked last.json was not moved aside: %v", m)
	}
}

// TestAttemptsSurviveTheDaemonsWrites: seen in QEMU — the gate (its own
// process) recorded its verdict in pending.json while the daemon, which
// had read pending.json just before, wrote it back with the new stage:
// the verdict was lost. The gate now writes attempts.json only.
func TestAttemptsSurviveTheDaemonsWrites(t *testing.T) {
	s, _ := Open(filepath.Join(t.TempDir(), "update"))
	start := time.Now().UTC()
	s.SetPending(&Pending{Version: "0.2.0", Slot: "B", Stage: StageRebooting, Started: start})
	stale, _ := s.Pending()                                                                                                   // the daemon reads
	s.AddAttempt(Attempt{At: start.Add(time.Minute), Version: "0.2.0", Slot: "B", Reason: "connector not Online after 5m0s"}) // the gate
	stale.Stage = StageTrial
	s.SetPending(stale) // the daemon writes what it read, changed
	p, _ := s.Pending()
	if a := s.LastAttempt(p); a == nil || a.Reason != "connector not Online after 5m0s" {
		t.Errorf("LastAttempt = %+v, want the gate's verdict", a)
	}
	// Attempts of another change do not count.
	s.AddAttempt(Attempt{At: start.Add(2 * time.Minute), Version: "0.3.0", Slot: "B", Reason: "other"})
	if as, _ := s.Attempts(p); len(as) != 1 {
		t.Errorf("Attempts = %+v, want only 0.2.0's", as)
	}
	s.ClearPending()
	if as, _ := s.Attempts(p); len(as) != 0 {
		t.Errorf("Attempts after ClearPending = %+v", as)
	}
}
