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

func TestCorruptRecordIsAnErrorNotAReset(t *testing.T) {
	s, _ := Open(filepath.Join(t.TempDir(), "update"))
	os.WriteFile(filepath.Join(s.Dir, "pending.json"), []byte("{not json"), 0o600)
	_, err := s.Pending()
	if err == nil || !strings.Contains(err.Error(), "pending.json") || !strings.Contains(err.Error(), "hint:") {
		t.Errorf("Pending = %v, want an error naming the file with a hint", err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Dir, "pending.json")); string(b) != "{not json" {
		t.Error("the corrupt record was replaced")
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
