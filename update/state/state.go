// Package state keeps the updater's records under /data/update: the update
// in progress (pending.json), the versions that failed on this appliance
// (failed.json), the last update's result (last.json) and the TUF metadata
// this appliance trusts (tuf/). The connector puts offered downloads in
// incoming/; the updater only reads them.
//
// Every file is replaced atomically (connector/atomicfile: temporary file,
// fsync, rename, fsync of the directory), so a power cut at any instant
// leaves the old or the new record, never a mix. /data is DATA, not a root
// slot: the records survive updates and rollbacks, and both slots read and
// write the same files. A Store is not safe for concurrent use; the
// updater's daemon serialises access.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vaultpam/appliance/connector/atomicfile"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
)

// DefaultDir is where the records live on the appliance.
const DefaultDir = "/data/update"

// Kind says what a pending change is.
type Kind string

const (
	// KindUpdate installs a newer version into the other slot; systemd-boot
	// picks it by version order.
	KindUpdate Kind = "update"
	// KindDowngrade installs an older version (operator-confirmed); it is
	// booted once with LoaderEntryOneShot.
	KindDowngrade Kind = "downgrade"
	// KindRollback boots the other slot's existing image (operator-asked),
	// once with LoaderEntryOneShot.
	KindRollback Kind = "rollback"
)

// Stage is how far a pending change got. The order is the order of
// events; reconcile decides at boot what a stage means given the slot that
// runs and the boot entries on the ESP.
type Stage string

const (
	// StageWriting: the other slot is being written; its UKI does not
	// exist (or exists only as a temporary .part), so nothing can boot it.
	StageWriting Stage = "writing"
	// StageInstalled: slot and UKI written and verified; waiting for the
	// reboot (the maintenance window).
	StageInstalled Stage = "installed"
	// StageRebooting: sessions are being drained and the machine rebooted.
	StageRebooting Stage = "rebooting"
	// StageTrial: the new slot runs on a counted boot; the gate decides.
	StageTrial Stage = "trial"
)

// Pending is the change in progress, written by the slot that started it
// and read by both.
type Pending struct {
	Kind        Kind   `json:"kind"`
	Version     string `json:"version"`      // the version being installed or booted
	Slot        string `json:"slot"`         // the slot it goes to ("A" or "B")
	FromVersion string `json:"from_version"` // the version that ran when it started
	FromSlot    string `json:"from_slot"`
	Stage       Stage  `json:"stage"`
	// ConnectorID is the connector's ID when the change started: the gate
	// requires the new slot's connector Online with this ID. Empty means
	// the gate accepts any ID (the connector had none).
	ConnectorID  string `json:"connector_id,omitempty"`
	Source       string `json:"source,omitempty"` // control_plane, cdrom, console
	Target       string `json:"target,omitempty"` // the TUF target name
	BundleSHA256 string `json:"bundle_sha256,omitempty"`
	UKI          string `json:"uki,omitempty"` // the boot entry's file name as written
	// BootID is the boot in which the reboot into the new slot was asked
	// for (stage rebooting): a later boot that still runs the old slot
	// with the new entry untried means the boot loader did not pick it.
	BootID  string    `json:"boot_id,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// Attempt is one trial boot as the gate saw it. The gate (its own
// process) keeps them in attempts.json, apart from pending.json, which
// only the daemon writes: two processes never rewrite the same file.
type Attempt struct {
	At          time.Time `json:"at"`
	Slot        string    `json:"slot"`
	Version     string    `json:"version"`
	Entry       string    `json:"entry,omitempty"` // LoaderBootCountPath's file name
	OK          bool      `json:"ok"`
	State       string    `json:"state,omitempty"` // the connector's last state
	ConnectorID string    `json:"connector_id,omitempty"`
	Reason      string    `json:"reason"`
}

// Failed is a version that failed on this appliance; it is never installed
// again automatically.
type Failed struct {
	Version      string    `json:"version"`
	BundleSHA256 string    `json:"bundle_sha256,omitempty"`
	Reason       string    `json:"reason"`
	At           time.Time `json:"at"`
}

// Store reads and writes the records in Dir.
type Store struct {
	Dir string
	// BeforeStep is passed to atomicfile for fault injection in tests.
	BeforeStep func(atomicfile.Step) error

	// damaged lists the records moved aside since Open (for the status);
	// lostPending is where a damaged pending.json went, until taken.
	// mu guards both (the status reads them while the daemon works).
	mu          sync.Mutex
	damaged     []string
	lostPending string
}

// Damaged says which records were moved aside because they did not
// decode or were not the updater's (for the status), oldest first.
func (s *Store) Damaged() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.damaged...)
}

// TakeLostPending returns where a damaged pending.json was moved ("" when
// none was) and forgets it: the change it described ended unknown.
func (s *Store) TakeLostPending() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lostPending
	s.lostPending = ""
	return l
}

// Open returns a store on dir ("" means DefaultDir), creating it 0755
// (the connector reaches incoming/ through it; every record is 0600).
func Open(dir string) (*Store, error) {
	if dir == "" {
		dir = DefaultDir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("update state: %w", err)
	}
	return &Store{Dir: dir}, nil
}

// Secure makes Dir belong to this process's user with mode 0755: the
// connector (another user) must not be able to change the records, the
// trusted metadata or the failed versions. A Dir that is a symbolic link
// is refused. When Dir belonged to another user (it made it first), the
// directory is taken back and everything in it but incoming/ that is not
// this user's, or is a symbolic link, is moved aside
// (NAME.untrusted-TIME): nothing another user could have written is read
// as a record or as trusted metadata.
func (s *Store) Secure() error {
	fi, err := os.Lstat(s.Dir)
	if err != nil {
		return fmt.Errorf("update state: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("update state %s is not a directory (a symbolic link?): refusing it (hint: remove it; the updater makes a new one)", s.Dir)
	}
	if !ours(fi) {
		if err := os.Lchown(s.Dir, os.Geteuid(), os.Getegid()); err != nil {
			return fmt.Errorf("update state: owning %s: %w", s.Dir, err)
		}
		entries, err := os.ReadDir(s.Dir)
		if err != nil {
			return fmt.Errorf("update state: %w", err)
		}
		for _, e := range entries {
			if e.Name() == "incoming" || strings.Contains(e.Name(), untrustedMark) {
				continue
			}
			if fi, err := os.Lstat(filepath.Join(s.Dir, e.Name())); err == nil && (!ours(fi) || fi.Mode()&fs.ModeSymlink != 0) {
				if _, err := s.moveAside(e.Name(), untrustedMark); err != nil {
					return err
				}
			}
		}
	}
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		return fmt.Errorf("update state: %w", err)
	}
	return nil
}

// untrustedMark is the suffix of a file moved aside because another user
// could have written it.
const untrustedMark = ".untrusted-"

// ours reports whether fi belongs to this process's user.
func ours(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// moveAside renames Dir/name to Dir/name<mark><time> and returns the new
// name.
func (s *Store) moveAside(name, mark string) (string, error) {
	to := name + mark + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(filepath.Join(s.Dir, name), filepath.Join(s.Dir, to)); err != nil {
		return "", fmt.Errorf("update state: moving %s aside: %w", name, err)
	}
	return to, syncDir(s.Dir)
}

// checkDir refuses a Dir that is not this user's directory any more (it
// was replaced while the updater ran).
func (s *Store) checkDir() error {
	fi, err := os.Lstat(s.Dir)
	if err != nil {
		return fmt.Errorf("update state: %w", err)
	}
	if !fi.IsDir() || !ours(fi) {
		return fmt.Errorf("update state %s is no longer a directory of uid %d (replaced by another user?): refusing its records (hint: restart vaultpam-update; it takes the directory back)", s.Dir, os.Geteuid())
	}
	return nil
}

// TUFDir is where the trusted TUF metadata lives.
func (s *Store) TUFDir() string { return filepath.Join(s.Dir, "tuf") }

// IncomingDir is where the connector puts offered downloads.
func (s *Store) IncomingDir() string { return filepath.Join(s.Dir, "incoming") }

// MakeIncoming creates IncomingDir, 0700, owned by uid:gid (the
// connector's user), so the connector can download into it. Something
// else in its place (a symbolic link, a file) is moved aside first; the
// owner is changed without following links.
func (s *Store) MakeIncoming(uid, gid int) error {
	d := s.IncomingDir()
	if fi, err := os.Lstat(d); err == nil && !fi.IsDir() {
		if _, err := s.moveAside("incoming", untrustedMark); err != nil {
			return err
		}
	}
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("update state: %w", err)
	}
	if err := os.Lchown(d, uid, gid); err != nil {
		return fmt.Errorf("update state: handing %s to the connector: %w", d, err)
	}
	return nil
}

const (
	pendingFile  = "pending.json"
	attemptsFile = "attempts.json"
	failedFile   = "failed.json"
	lastFile     = "last.json"
)

// Pending returns the change in progress, or nil when there is none.
func (s *Store) Pending() (*Pending, error) {
	var p Pending
	ok, err := s.read(pendingFile, &p)
	if !ok {
		return nil, err
	}
	return &p, nil
}

// SetPending records p.
func (s *Store) SetPending(p *Pending) error { return s.write(pendingFile, p) }

// ClearPending removes the record of the change in progress and its
// trial attempts.
func (s *Store) ClearPending() error {
	if err := s.checkDir(); err != nil {
		return err
	}
	for _, f := range []string{pendingFile, attemptsFile} {
		err := os.Remove(filepath.Join(s.Dir, f))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("update state: %w", err)
		}
	}
	return syncDir(s.Dir)
}

// Attempts returns the gate's verdicts on p's trial boots (its version
// and slot, since p started), oldest first.
func (s *Store) Attempts(p *Pending) ([]Attempt, error) {
	var all []Attempt
	if _, err := s.read(attemptsFile, &all); err != nil || p == nil {
		return nil, err
	}
	var out []Attempt
	for _, a := range all {
		if a.Version == p.Version && a.Slot == p.Slot && !a.At.Before(p.Started) {
			out = append(out, a)
		}
	}
	return out, nil
}

// LastAttempt returns the newest of p's attempts, or nil.
func (s *Store) LastAttempt(p *Pending) *Attempt {
	as, err := s.Attempts(p)
	if err != nil || len(as) == 0 {
		return nil
	}
	return &as[len(as)-1]
}

// AddAttempt appends a to attempts.json (the gate's file).
func (s *Store) AddAttempt(a Attempt) error {
	var all []Attempt
	if _, err := s.read(attemptsFile, &all); err != nil {
		return err
	}
	return s.write(attemptsFile, append(all, a))
}

// Failed returns the versions that failed here, oldest first.
func (s *Store) Failed() ([]Failed, error) {
	var f []Failed
	_, err := s.read(failedFile, &f)
	return f, err
}

// FailedVersion returns the record of v in failed.json, or nil.
func (s *Store) FailedVersion(v string) (*Failed, error) {
	all, err := s.Failed()
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Version == v {
			return &all[i], nil
		}
	}
	return nil, nil
}

// AddFailed appends f to failed.json (once per version).
func (s *Store) AddFailed(f Failed) error {
	all, err := s.Failed()
	if err != nil {
		return err
	}
	for _, e := range all {
		if e.Version == f.Version {
			return nil
		}
	}
	return s.write(failedFile, append(all, f))
}

// Last returns the last update's result, or nil.
func (s *Store) Last() (*localapi.UpdateStatus, error) {
	var u localapi.UpdateStatus
	ok, err := s.read(lastFile, &u)
	if !ok {
		return nil, err
	}
	return &u, nil
}

// SetLast records the last update's result.
func (s *Store) SetLast(u localapi.UpdateStatus) error { return s.write(lastFile, u) }

// Durable reports whether Dir is on a file system that survives a reboot
// (not tmpfs or ramfs: guided recovery mode), the same test the connector
// uses for its mode.
func (s *Store) Durable() (bool, string, error) {
	m, err := identity.DetectMode(s.Dir, nil)
	if err != nil {
		return false, "", err
	}
	return m.Durable, m.FSType, nil
}

// read decodes name into v; ok is false when the file does not exist. A
// file that does not decode is an error naming it: it is never silently
// replaced. A record that is not a regular file of this process's user
// (a symbolic link, a FIFO, a file another user wrote) is refused.
func (s *Store) read(name string, v any) (bool, error) {
	if err := s.checkDir(); err != nil {
		return false, err
	}
	path := filepath.Join(s.Dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if errors.Is(err, syscall.ELOOP) {
		return false, s.putAside(name, untrustedMark, "is a symbolic link")
	}
	if err != nil {
		return false, fmt.Errorf("update state: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("update state: %w", err)
	}
	if !fi.Mode().IsRegular() || !ours(fi) {
		f.Close()
		return false, s.putAside(name, untrustedMark, fmt.Sprintf("is not a regular file of uid %d", os.Geteuid()))
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return false, fmt.Errorf("update state: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		f.Close()
		return false, s.putAside(name, corruptMark, fmt.Sprintf("does not decode (%v)", err))
	}
	return true, nil
}

// corruptMark is the suffix of a record moved aside because it did not
// decode (a bad sector, a cut write of an older version).
const corruptMark = ".corrupt-"

// putAside moves a record that cannot be used out of the way, so the
// updater goes on without it (the file is kept for people to look at),
// and notes it for the status. Only when it cannot be moved is it an
// error.
func (s *Store) putAside(name, mark, why string) error {
	to, err := s.moveAside(name, mark)
	if err != nil {
		return fmt.Errorf("update state %s %s and cannot be moved aside: %w (hint: move it away by hand; the updater starts afresh)", filepath.Join(s.Dir, name), why, err)
	}
	s.mu.Lock()
	s.damaged = append(s.damaged, fmt.Sprintf("%s %s; moved aside to %s", name, why, to))
	if name == pendingFile {
		s.lostPending = to
	}
	s.mu.Unlock()
	return nil
}

func (s *Store) write(name string, v any) error {
	if err := s.checkDir(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	err = atomicfile.Write(filepath.Join(s.Dir, name), b, atomicfile.Options{Perm: 0o600, MkdirAll: true, BeforeStep: s.BeforeStep})
	if err != nil {
		return fmt.Errorf("update state: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
