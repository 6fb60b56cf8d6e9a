package privileged

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vaultpam/appliance/connector/atomicfile"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// A network change from the health screen is applied on trial, like
// `talosctl apply --mode=try`: the files it replaces are kept aside in
// /config/network.trial with the deadline, the new ones are written and
// applied, and unless the console says "keep" before the deadline the
// kept files come back and are applied again. Two things hold the
// deadline, so the revert happens whatever dies: the helper's own timer,
// and vaultpam-network-revert.timer (started with the trial, a little
// later than the deadline), whose service runs `vaultpam-console helper
// --revert-network`. A reboot during a trial restores the kept files
// before systemd-networkd starts (--revert-network --at-boot).

// Paths of a trial, relative to the root.
const (
	TrialDir      = "config/network.trial"
	trialRecord   = "trial.json"
	trialLock     = "config/.network-trial.lock"
	lastRevert    = "config/network.reverted.json"
	RevertTimer   = "vaultpam-network-revert.timer"
	DefaultTrial  = 120 * time.Second
	trialChildDir = "network" // the kept config/network files, inside TrialDir
)

// trialFiles are the single files a trial keeps aside besides config/network.
var trialFiles = []string{settings.HostnameFile, settings.TimesyncdFile, settings.ConnectorYAML}

type trialRecordBody struct {
	Deadline time.Time `json:"deadline"`
}

// lockTrial takes the lock that serialises trials between the helper and
// the revert service (another process).
func (s *Server) lockTrial() (func(), error) {
	path := filepath.Join(s.cfg.Root, trialLock)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the trial lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("taking the trial lock: %w", err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// readTrial returns the running trial's record, or ok false when none runs.
func (s *Server) readTrial() (trialRecordBody, bool) {
	b, err := os.ReadFile(filepath.Join(s.cfg.Root, TrialDir, trialRecord))
	if err != nil {
		return trialRecordBody{}, false
	}
	var r trialRecordBody
	if json.Unmarshal(b, &r) != nil || r.Deadline.IsZero() {
		// A damaged record still means kept files: revert at once.
		return trialRecordBody{Deadline: time.Unix(0, 0)}, true
	}
	return r, true
}

// trialState answers TrialStatus.
func (s *Server) trialState() TrialState {
	var st TrialState
	if r, ok := s.readTrial(); ok {
		st.Active, st.Deadline = true, r.Deadline
	}
	// Until the previous settings are applied again, the trial is not over.
	st.Active = st.Active || s.reverting.Load()
	if b, err := os.ReadFile(filepath.Join(s.cfg.Root, lastRevert)); err == nil {
		var last TrialState
		if json.Unmarshal(b, &last) == nil {
			st.RevertedAt, st.RevertReason = last.RevertedAt, last.RevertReason
		}
	}
	return st
}

// trialNetwork starts a trial with the settings in body. Called with
// s.actions held.
func (s *Server) trialNetwork(ctx context.Context, body []byte) (*Done, []byte, error) {
	st, err := s.decodeSettings(body)
	if err != nil {
		return nil, nil, err
	}
	st.CACert = "" // trust has its own request
	unlock, err := s.lockTrial()
	if err != nil {
		return nil, nil, err
	}
	if r, ok := s.readTrial(); ok {
		unlock()
		return nil, nil, &Error{Status: http.StatusConflict, Code: CodeFailed,
			Message: fmt.Sprintf("a network change is already on trial until %s", r.Deadline.UTC().Format(time.TimeOnly)),
			Hint:    "keep it (K) or let it come back first"}
	}
	deadline := s.cfg.Now().Add(s.cfg.TrialTimeout)
	err = s.keepAside(deadline)
	if err == nil {
		_, err = st.Write(s.cfg.Root)
	}
	unlock()
	if err != nil {
		s.revert(ctx, "the new settings could not be written: "+err.Error())
		return nil, nil, &Error{Status: http.StatusInternalServerError, Code: CodeFailed, Message: "trying the network settings: " + err.Error(),
			Hint: "the previous settings are in place again; check that the CONFIG partition is mounted on /config"}
	}
	// The deadline is held before anything changes on the network.
	s.armTrial(deadline)
	if _, err := s.run(ctx, "systemctl", "restart", RevertTimer); err != nil {
		fmt.Fprintf(s.cfg.Log, "vaultpam-console helper: starting %s (the deadline should the helper die): %v\n", RevertTimer, err)
	}
	if _, _, err := s.applyNetwork(ctx); err != nil {
		s.revert(ctx, "applying the new settings failed")
		return nil, nil, err
	}
	if err := s.restart(ctx, RestartConnector, "vaultpam-connector"); err != nil {
		fmt.Fprintf(s.cfg.Log, "vaultpam-console helper: restarting the connector for the trial: %v\n", err)
	}
	t := s.trialState()
	return &Done{Detail: "network settings on trial until " + deadline.UTC().Format(time.TimeOnly), Trial: &t}, nil, nil
}

// keepAside copies the files a trial replaces into TrialDir, with the
// record last: the record's presence means "a trial runs, these files are
// the ones to come back".
func (s *Server) keepAside(deadline time.Time) error {
	root := s.cfg.Root
	dir := filepath.Join(root, TrialDir)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, trialChildDir), 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(filepath.Join(root, settings.NetworkDir))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(root, settings.NetworkDir, e.Name()), filepath.Join(dir, trialChildDir, e.Name())); err != nil {
			return err
		}
	}
	for _, f := range trialFiles {
		err := copyFile(filepath.Join(root, f), filepath.Join(dir, filepath.Base(f)))
		if err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	b, _ := json.Marshal(trialRecordBody{Deadline: deadline})
	return atomicfile.Write(filepath.Join(dir, trialRecord), b, atomicfile.Options{Perm: 0o644})
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return atomicfile.Write(to, b, atomicfile.Options{Perm: 0o644, MkdirAll: true})
}

// armTrial sets the helper's own timer for deadline.
func (s *Server) armTrial(deadline time.Time) {
	s.trialMu.Lock()
	defer s.trialMu.Unlock()
	if s.trialTimer != nil {
		s.trialTimer.Stop()
	}
	d := deadline.Sub(s.cfg.Now())
	if d < 0 {
		d = 0
	}
	s.trialTimer = time.AfterFunc(d, func() {
		s.actions.Lock()
		defer s.actions.Unlock()
		if r, ok := s.readTrial(); !ok || !r.Deadline.Equal(deadline) {
			return // kept, or a newer trial with its own timer
		}
		s.revert(context.Background(), fmt.Sprintf("not kept within %s", s.cfg.TrialTimeout))
	})
}

func (s *Server) disarmTrial() {
	s.trialMu.Lock()
	defer s.trialMu.Unlock()
	if s.trialTimer != nil {
		s.trialTimer.Stop()
		s.trialTimer = nil
	}
}

// Resume re-arms the timer of a trial that was running when the helper
// (re)started; one past its deadline comes back at once.
func (s *Server) Resume() {
	if r, ok := s.readTrial(); ok {
		fmt.Fprintf(s.cfg.Log, "vaultpam-console helper: a network change is on trial until %s\n", r.Deadline.UTC().Format(time.RFC3339))
		s.armTrial(r.Deadline)
	}
}

// keepNetwork ends the trial with the new settings kept. Called with
// s.actions held.
func (s *Server) keepNetwork(ctx context.Context) (*Done, []byte, error) {
	unlock, err := s.lockTrial()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	if _, ok := s.readTrial(); !ok {
		st := s.trialState()
		msg := "no network change is on trial"
		if !st.RevertedAt.IsZero() {
			msg += "; the previous settings came back at " + st.RevertedAt.UTC().Format(time.TimeOnly) + " (" + st.RevertReason + ")"
		}
		return nil, nil, &Error{Status: http.StatusConflict, Code: CodeFailed, Message: msg, Hint: "make the change again (N) if you still want it"}
	}
	s.disarmTrial()
	if err := os.RemoveAll(filepath.Join(s.cfg.Root, TrialDir)); err != nil {
		return nil, nil, &Error{Status: http.StatusInternalServerError, Code: CodeFailed, Message: "ending the trial: " + err.Error()}
	}
	if _, err := s.run(ctx, "systemctl", "stop", RevertTimer); err != nil {
		fmt.Fprintf(s.cfg.Log, "vaultpam-console helper: stopping %s: %v\n", RevertTimer, err)
	}
	return &Done{Detail: "new network settings kept"}, nil, nil
}

// revert restores the kept files, if a trial runs, and applies them.
// Called with s.actions held (or from the revert command, alone). It
// reports whether it restored anything.
func (s *Server) revert(ctx context.Context, reason string) (bool, error) {
	s.reverting.Store(true)
	defer s.reverting.Store(false)
	s.disarmTrial()
	unlock, err := s.lockTrial()
	if err != nil {
		return false, err
	}
	restored, err := s.restore(reason)
	unlock()
	if err != nil || !restored {
		return restored, err
	}
	fmt.Fprintf(s.cfg.Log, "vaultpam-console helper: previous network settings restored: %s\n", reason)
	if !s.atBoot {
		if _, _, err := s.applyNetwork(ctx); err != nil {
			return true, err
		}
		if err := s.restart(ctx, RestartConnector, "vaultpam-connector"); err != nil {
			return true, err
		}
		if _, err := s.run(ctx, "systemctl", "stop", RevertTimer); err != nil {
			fmt.Fprintf(s.cfg.Log, "vaultpam-console helper: stopping %s: %v\n", RevertTimer, err)
		}
	}
	return true, nil
}

// restore puts the kept files back, the record last: a crash in between
// restores again. Called with the trial lock held.
func (s *Server) restore(reason string) (bool, error) {
	root := s.cfg.Root
	dir := filepath.Join(root, TrialDir)
	if _, ok := s.readTrial(); !ok {
		return false, nil
	}
	kept := map[string]bool{}
	ents, err := os.ReadDir(filepath.Join(dir, trialChildDir))
	if err != nil && !os.IsNotExist(err) {
		return false, err
	}
	for _, e := range ents {
		kept[e.Name()] = true
		if err := copyFile(filepath.Join(dir, trialChildDir, e.Name()), filepath.Join(root, settings.NetworkDir, e.Name())); err != nil {
			return false, err
		}
	}
	now, _ := os.ReadDir(filepath.Join(root, settings.NetworkDir))
	for _, e := range now {
		if !kept[e.Name()] && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(root, settings.NetworkDir, e.Name())); err != nil {
				return false, err
			}
		}
	}
	for _, f := range trialFiles {
		src := filepath.Join(dir, filepath.Base(f))
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := copyFile(src, filepath.Join(root, f)); err != nil {
			return false, err
		}
	}
	b, _ := json.Marshal(TrialState{RevertedAt: s.cfg.Now().UTC(), RevertReason: reason})
	if err := atomicfile.Write(filepath.Join(root, lastRevert), b, atomicfile.Options{Perm: 0o644}); err != nil {
		return false, err
	}
	// One rename: the record and the kept files go together.
	done := dir + ".done"
	os.RemoveAll(done)
	if err := os.Rename(dir, done); err != nil {
		return false, err
	}
	return true, os.RemoveAll(done)
}

// revertNow answers RevertNetwork. Called with s.actions held.
func (s *Server) revertNow(ctx context.Context) (*Done, []byte, error) {
	ok, err := s.revert(ctx, "reverted by the operator")
	switch {
	case err != nil:
		return nil, nil, &Error{Status: http.StatusInternalServerError, Code: CodeFailed, Message: "restoring the previous network settings: " + err.Error()}
	case !ok:
		return nil, nil, &Error{Status: http.StatusConflict, Code: CodeFailed, Message: "no network change is on trial"}
	}
	return &Done{Detail: "previous network settings restored"}, nil, nil
}

// RevertIfDue is `vaultpam-console helper --revert-network`: it restores
// a trial's kept settings when its deadline has passed, or at once with
// atBoot (the appliance restarted during a trial; the files are only put
// back, systemd-networkd starts after). It returns what it did.
func (s *Server) RevertIfDue(ctx context.Context, atBoot bool) (string, error) {
	r, ok := s.readTrial()
	switch {
	case !ok:
		return "no network change on trial", nil
	case !atBoot && s.cfg.Now().Before(r.Deadline):
		return "the trial runs until " + r.Deadline.UTC().Format(time.RFC3339) + "; nothing to do yet", nil
	}
	reason := fmt.Sprintf("not kept within %s", s.cfg.TrialTimeout)
	if atBoot {
		reason = "the appliance restarted during the trial"
	}
	s.atBoot = atBoot
	s.actions.Lock()
	defer s.actions.Unlock()
	done, err := s.revert(ctx, reason)
	if err != nil {
		return "", err
	}
	if !done {
		return "no network change on trial", nil
	}
	return "previous network settings restored: " + reason, nil
}

// trustCA answers TrustCA: body is PEM certificates. Called with
// s.actions held.
func (s *Server) trustCA(body []byte) (*Done, []byte, error) {
	if strings.TrimSpace(string(body)) == "" {
		return nil, nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: "no certificate in the request"}
	}
	certs, err := settings.ParseCABundle(body)
	if err != nil {
		code := CodeInvalid
		if strings.Contains(err.Error(), "private key") {
			code = CodeSecret
		}
		return nil, nil, &Error{Status: http.StatusBadRequest, Code: code, Message: err.Error()}
	}
	n, err := settings.AddCA(s.cfg.Root, certs)
	if err != nil {
		return nil, nil, &Error{Status: http.StatusInternalServerError, Code: CodeFailed, Message: err.Error()}
	}
	var fps []string
	for _, c := range certs {
		fps = append(fps, settings.Fingerprint(c)[:23]+"...")
	}
	return &Done{Detail: fmt.Sprintf("%d new certificate(s) in /%s (%s)", n, settings.CAFile, strings.Join(fps, ", ")),
		Files: []string{settings.CAFile}}, nil, nil
}
