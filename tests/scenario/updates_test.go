package scenario

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/update/release"
	"github.com/vaultpam/appliance/update/trust"
)

// The update steps offer the appliance (the OVA's version, 0.1.0) other
// versions built by `make test-bundles` and signed by the same update
// repository as the OVA (dist/update-repo, whose root the OVA bakes in):
// a good next version and one whose connector never goes Online (the
// test-only build tag vaultpam_fault_neveronline, with a short health-gate
// deadline on its kernel command line).
const (
	envRepo        = "VAULTPAM_UPDATE_REPO"
	envBundleNext  = "VAULTPAM_BUNDLE_NEXT"
	envISONext     = "VAULTPAM_ISO_NEXT"
	envBundleFault = "VAULTPAM_BUNDLE_FAULT"
)

// updateFiles are the artifacts the update steps need.
type updateFiles struct {
	Repo, Next, NextISO, Fault, Own string
	// NextVersion, FaultVersion and OwnVersion are the versions the signed
	// targets give the bundles.
	NextVersion, FaultVersion, OwnVersion string
}

// findUpdateFiles reads the environment make test sets; it says why the
// update steps cannot run when something is missing.
func findUpdateFiles() (*updateFiles, error) {
	f := &updateFiles{Repo: os.Getenv(envRepo), Next: os.Getenv(envBundleNext), NextISO: os.Getenv(envISONext), Fault: os.Getenv(envBundleFault)}
	for _, v := range [][2]string{{envRepo, f.Repo}, {envBundleNext, f.Next}, {envISONext, f.NextISO}, {envBundleFault, f.Fault}} {
		if v[1] == "" {
			return nil, fmt.Errorf("%s is not set; run `make test` or `make e2e` (make test-bundles builds the update bundles)", v[0])
		}
		if _, err := os.Stat(v[1]); err != nil {
			return nil, fmt.Errorf("%s: %w; run `make test-bundles`", v[0], err)
		}
	}
	// The OVA's own bundle lies beside the OVA (dist/).
	if ova := os.Getenv("VAULTPAM_OVA"); ova != "" {
		f.Own = strings.TrimSuffix(ova, ".ova") + ".update"
	}
	if _, err := os.Stat(f.Own); err != nil {
		return nil, fmt.Errorf("the OVA's own update bundle: %w; run `make ova`", err)
	}
	var err error
	for _, b := range []struct {
		path string
		v    *string
	}{{f.Next, &f.NextVersion}, {f.Fault, &f.FaultVersion}, {f.Own, &f.OwnVersion}} {
		if *b.v, err = targetVersion(f.Repo, filepath.Base(b.path)); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// signedTarget reads a bundle's entry from the repository's targets.json.
func signedTarget(repo, name string) (trust.Target, error) {
	b, err := os.ReadFile(filepath.Join(repo, "targets.json"))
	if err != nil {
		return trust.Target{}, err
	}
	var doc struct {
		Signed struct {
			Targets map[string]struct {
				Length int64             `json:"length"`
				Hashes map[string]string `json:"hashes"`
				Custom trust.Custom      `json:"custom"`
			} `json:"targets"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return trust.Target{}, fmt.Errorf("%s/targets.json: %w", repo, err)
	}
	t, ok := doc.Signed.Targets[name]
	if !ok {
		return trust.Target{}, fmt.Errorf("%s/targets.json does not list %s; run `make test-bundles` and `make ova` into the same dist/", repo, name)
	}
	return trust.Target{Name: name, Length: t.Length, SHA256: t.Hashes["sha256"], Custom: t.Custom}, nil
}

func targetVersion(repo, name string) (string, error) {
	t, err := signedTarget(repo, name)
	return t.Custom.Version, err
}

// updateSteps are the A/B update steps, on the enrolled appliance running
// the OVA's version in slot A with durable /data.
func updateSteps(f *updateFiles) []Step {
	u := &updater{f: f}
	return []Step{
		{"update: flipped byte", u.stepFlipped},
		{"update: unknown key", u.stepUnknownKey},
		{"update: cut in write-root", u.stepPowerCut},
		{"update: install " + f.NextVersion, u.stepInstall},
		{"update: older refused", u.stepOlder},
		// The manual rollback needs a good image in the other slot: it
		// comes before the never-Online version overwrites that slot.
		{"update: rollback (O, Y)", u.stepRollback},
		{"update: CD-ROM (U, Y)", u.stepCDROM},
		{"update: never Online", u.stepNeverOnline},
		{"update: failed refused", u.stepFailedAgain},
	}
}

// updater carries what the update steps learn from one another.
type updater struct {
	f *updateFiles
	// running and slot are the appliance's image as the steps left it.
	running, slot string
	// OfferToOnline is the last install's time from the lab's offer to the
	// connector Online on the new version.
	OfferToOnline time.Duration
}

func otherSlot(s string) string {
	if s == "A" {
		return "B"
	}
	return "A"
}

var (
	reRecordPending = regexp.MustCompile(`record-pending`)
	reOpenedSlot    = regexp.MustCompile(`vaultpam: opening verified root \(slot ([AB])\)`)
)

// offer offers bundle (listed in repo) to the appliance and returns the
// offer's ID.
func (u *updater) offer(a *Appliance, bundle, repo string) (string, error) {
	o, err := a.Net.Lab.OfferUpdate(a.ID, bundle, repo)
	if err != nil {
		return "", fmt.Errorf("the lab refused to offer %s: %w", bundle, err)
	}
	fi, _ := os.Stat(bundle)
	a.logf("lab offers %s (%s, %d bytes) as %s", o.Version, filepath.Base(bundle), fi.Size(), o.ID)
	a.T.Logf("offered %s (%s, %d bytes, offer %s)", o.Version, filepath.Base(bundle), fi.Size(), o.ID)
	return o.ID, nil
}

// waitUpdate polls the lab's record of the connector until match accepts
// it (the lab records update reports from the heartbeats, which fire no
// status change) and returns it.
func (u *updater) waitUpdate(ctx context.Context, a *Appliance, within time.Duration, what string, match func(c lab.Connector) bool) (lab.Connector, error) {
	deadline := time.Now().Add(within)
	var c lab.Connector
	for {
		var ok bool
		c, ok = a.Net.Connector(a.ID)
		if !ok {
			return c, fmt.Errorf("the lab lost connector %s", a.ID)
		}
		if match(c) {
			return c, nil
		}
		if time.Now().After(deadline) {
			return c, timeout(fmt.Errorf("the lab never showed %s; it shows version %q, update %s", what, c.Version, describeUpdate(c.Update)))
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func describeUpdate(u *lab.UpdateInfo) string {
	if u == nil {
		return "none"
	}
	return fmt.Sprintf("{offer %s, %s %s: %q}", u.OfferID, u.Version, u.State, u.Reason)
}

// refused offers bundle from repo and waits for the lab to show the
// update failed with a reason matching want; nothing may have been
// written. The lab's record carries the offer's ID while the connector
// speaks (a refusal at the hand-over) and none once the updater does (a
// bundle refused by its full read), so the version, the state and the
// reason identify the outcome.
func (u *updater) refused(ctx context.Context, a *Appliance, bundle, repo string, want *regexp.Regexp) error {
	a.Mark()
	start := len(a.M.Output())
	id, err := u.offer(a, bundle, repo)
	if err != nil {
		return err
	}
	v, err := targetVersion(repo, filepath.Base(bundle))
	if err != nil {
		return err
	}
	c, err := u.waitUpdate(ctx, a, 15*time.Minute, "the offer "+id+" refused with a reason matching "+want.String(), func(c lab.Connector) bool {
		up := c.Update
		return up != nil && (up.OfferID == id || up.OfferID == "") && up.Version == v && up.State == localapi.UpdateFailed && want.MatchString(up.Reason)
	})
	if err != nil {
		return err
	}
	a.T.Logf("refused: %s", c.Update.Reason)
	if reRecordPending.MatchString(a.M.Output()[start:]) {
		return wrong("the updater started writing (record-pending on the console) for an update it refused")
	}
	if c.Version != u.running {
		return wrong("the lab shows version %s after a refused update, want %s", c.Version, u.running)
	}
	return nil
}

// stepFlipped offers a copy of the next version's bundle with one byte
// flipped in the middle of its root file system (the same length, so
// only the whole read against the signed SHA-256 can tell): refused
// before anything is written.
func (u *updater) stepFlipped(ctx context.Context, a *Appliance) error {
	u.running, u.slot = u.f.OwnVersion, "A"
	if c, _ := a.Net.Connector(a.ID); c.Version != u.running {
		return wrong("the lab shows the appliance on version %q, want the OVA's %s", c.Version, u.running)
	}
	dir := filepath.Join(a.Dir, "flipped")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bad := filepath.Join(dir, filepath.Base(u.f.Next))
	if err := copyFile(u.f.Next, bad); err != nil {
		return err
	}
	if err := flipByte(bad, 50<<20); err != nil {
		return err
	}
	return u.refused(ctx, a, bad, u.f.Repo, regexp.MustCompile(`refused before anything was written: .*sha256`))
}

// stepUnknownKey offers the next version's real bundle listed in a second
// update repository, made here with a key the appliance never saw:
// refused before anything is written.
func (u *updater) stepUnknownKey(ctx context.Context, a *Appliance) error {
	repo := filepath.Join(a.Dir, "unknown-repo")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	signer, err := trust.SignerFromKey(key)
	if err != nil {
		return err
	}
	r := &trust.Repo{Dir: repo, Signer: signer}
	if err := r.Init(); err != nil {
		return err
	}
	t, err := signedTarget(u.f.Repo, filepath.Base(u.f.Next))
	if err != nil {
		return err
	}
	if err := r.AddTarget(t); err != nil {
		return err
	}
	return u.refused(ctx, a, u.f.Next, repo, regexp.MustCompile(`refused before anything was written: update metadata is not signed by a trusted key`))
}

// stepPowerCut offers the next version and pulls the plug while the
// updater writes the other slot's root: the next boot runs the old slot,
// Online, and the update shows as interrupted.
func (u *updater) stepPowerCut(ctx context.Context, a *Appliance) error {
	a.Mark()
	if _, err := u.offer(a, u.f.Next, u.f.Repo); err != nil {
		return err
	}
	to := otherSlot(u.slot)
	if _, err := a.Expect(regexp.MustCompile(`slot `+to+`: write-root`), 15*time.Minute); err != nil {
		return fmt.Errorf("the updater never started writing slot %s: %w", to, err)
	}
	time.Sleep(2 * time.Second) // well inside the write (tens of seconds under TCG)
	if err := a.PowerOff(); err != nil {
		return err
	}
	if err := a.PowerOn(ctx, a.Width, a.Height); err != nil {
		return err
	}
	mark := a.Mark()
	if err := u.expectSlot(a, u.slot); err != nil {
		return err
	}
	if err := a.WaitOnline(mark); err != nil {
		return err
	}
	c, err := u.waitUpdate(ctx, a, onlineWithin, "the update failed as interrupted", func(c lab.Connector) bool {
		return c.Update != nil && c.Update.Version == u.f.NextVersion && c.Update.State == localapi.UpdateFailed
	})
	if err != nil {
		return err
	}
	a.T.Logf("after the power cut: %s", c.Update.Reason)
	if !strings.Contains(c.Update.Reason, "interrupted") {
		return wrong("the update's reason %q does not say it was interrupted", c.Update.Reason)
	}
	if c.Version != u.running {
		return wrong("the lab shows version %s after the power cut, want %s", c.Version, u.running)
	}
	return nil
}

// expectSlot waits for the initramfs to open slot want.
func (u *updater) expectSlot(a *Appliance, want string) error {
	m, err := a.Expect(reOpenedSlot, bootTimeout)
	if err != nil {
		return err
	}
	if m[1] != want {
		return wrong("the boot opened slot %s, want slot %s", m[1], want)
	}
	return nil
}

// install offers bundle (version v) and waits for the reboot into the
// other slot, the connector Online there with the same ID, and the lab
// showing the update succeeded; nobody types on the console.
func (u *updater) install(ctx context.Context, a *Appliance, bundle, v string) error {
	a.Mark()
	t0 := time.Now()
	if _, err := u.offer(a, bundle, u.f.Repo); err != nil {
		return err
	}
	return u.followInstall(ctx, a, t0, v)
}

// followInstall follows an install the updater has taken (from the lab or
// the CD-ROM) through its reboot into the other slot, Online there.
func (u *updater) followInstall(ctx context.Context, a *Appliance, t0 time.Time, v string) error {
	to := otherSlot(u.slot)
	if _, err := a.Expect(regexp.MustCompile(regexp.QuoteMeta(v)+` installed in slot `+to), 15*time.Minute); err != nil {
		return err
	}
	tInstalled := time.Since(t0)
	if _, err := a.Expect(reRestarting, bootTimeout); err != nil {
		return err
	}
	mark := a.Mark()
	if err := a.FollowReset(ctx); err != nil {
		return err
	}
	if err := u.expectSlot(a, to); err != nil {
		return err
	}
	c, err := a.WaitLabOnline(mark)
	if err != nil {
		return err
	}
	tOnline := time.Since(t0)
	c, err = u.waitUpdate(ctx, a, onlineWithin, v+" succeeded", func(c lab.Connector) bool {
		return c.Version == v && c.Update != nil && c.Update.Version == v && c.Update.State == localapi.UpdateSucceeded
	})
	if err != nil {
		return err
	}
	if c.ID != a.ID {
		return wrong("the connector runs %s as %s, want the same ID %s", v, c.ID, a.ID)
	}
	if _, err := a.Expect(reStateOnline, onlineWithin); err != nil {
		return fmt.Errorf("the lab sees %s succeeded, the serial console does not say Online: %w", v, err)
	}
	u.OfferToOnline = tOnline
	a.T.Logf("%s: written and verified after %s, Online in slot %s after %s, succeeded after %s (from the offer): %s",
		v, tInstalled.Round(time.Second), to, tOnline.Round(time.Second), time.Since(t0).Round(time.Second), c.Update.Reason)
	u.running, u.slot = v, to
	return nil
}

// stepInstall installs the next version: slot B, the same ID.
func (u *updater) stepInstall(ctx context.Context, a *Appliance) error {
	return u.install(ctx, a, u.f.Next, u.f.NextVersion)
}

// stepOlder offers the OVA's own bundle, now older than the running
// version: refused, not newer.
func (u *updater) stepOlder(ctx context.Context, a *Appliance) error {
	return u.refused(ctx, a, u.f.Own, u.f.Repo, regexp.MustCompile(`is (not newer than|older than) the running `+regexp.QuoteMeta(u.running)))
}

// stepNeverOnline offers the version whose connector never goes Online:
// it is written to the other slot and tried three times (each trial's
// gate gives up and reboots), then the previous slot boots again, Online,
// and the lab shows rolled_back with the reason.
func (u *updater) stepNeverOnline(ctx context.Context, a *Appliance) error {
	v, from, to := u.f.FaultVersion, u.slot, otherSlot(u.slot)
	a.Mark()
	if _, err := u.offer(a, u.f.Fault, u.f.Repo); err != nil {
		return err
	}
	if _, err := a.Expect(regexp.MustCompile(regexp.QuoteMeta(v)+` installed in slot `+to), 15*time.Minute); err != nil {
		return err
	}
	// The install's reboot, then each failed trial's: follow every reset
	// until a boot opens the previous slot again.
	trials := 0
	for {
		if _, err := a.Expect(reRestarting, bootTimeout); err != nil {
			return err
		}
		if err := a.FollowReset(ctx); err != nil {
			return err
		}
		m, err := a.Expect(reOpenedSlot, bootTimeout)
		if err != nil {
			return err
		}
		if m[1] == from {
			break
		}
		trials++
		a.T.Logf("trial %d of %s in slot %s", trials, v, to)
		if trials > 3 {
			return wrong("slot %s was tried %d times, systemd-boot's counter gives it 3", to, trials)
		}
	}
	if trials != 3 {
		return wrong("slot %s was tried %d times before slot %s booted again, want 3", to, trials, from)
	}
	mark := a.Mark()
	if err := a.WaitOnline(mark); err != nil {
		return err
	}
	c, err := u.waitUpdate(ctx, a, onlineWithin, v+" rolled back", func(c lab.Connector) bool {
		return c.Update != nil && c.Update.Version == v && c.Update.State == localapi.UpdateRolledBack
	})
	if err != nil {
		return err
	}
	a.T.Logf("rolled back: %s", c.Update.Reason)
	if c.Version != u.running {
		return wrong("the lab shows version %s after the rollback, want %s", c.Version, u.running)
	}
	if !strings.Contains(c.Update.Reason, "not Online") {
		return wrong("the rollback's reason %q does not say the connector was not Online", c.Update.Reason)
	}
	return nil
}

// stepFailedAgain offers the version that failed once more: refused,
// it failed on this appliance before.
func (u *updater) stepFailedAgain(ctx context.Context, a *Appliance) error {
	return u.refused(ctx, a, u.f.Fault, u.f.Repo, regexp.MustCompile(regexp.QuoteMeta(u.f.FaultVersion)+` failed on this appliance`))
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// flipByte inverts the byte at off in path.
func flipByte(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return fmt.Errorf("reading byte %d of %s: %w", off, path, err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		return err
	}
	return f.Close()
}

// stepRollback rolls back by hand on the serial health screen (O, then Y
// on the confirm screen): the appliance reboots into the other slot's
// image, Online there with the same ID.
func (u *updater) stepRollback(ctx context.Context, a *Appliance) error {
	to := otherSlot(u.slot)
	want, err := u.slotVersion(a)
	if err != nil {
		return err
	}
	a.Mark()
	if err := a.Press("o"); err != nil {
		return err
	}
	if _, err := a.Expect(reConfirm, keyTimeout); err != nil {
		return err
	}
	if err := a.Press("y"); err != nil {
		return err
	}
	if _, err := a.Expect(reRestarting, bootTimeout); err != nil {
		return err
	}
	mark := a.Mark()
	if err := a.FollowReset(ctx); err != nil {
		return err
	}
	if err := u.expectSlot(a, to); err != nil {
		return err
	}
	if err := a.WaitOnline(mark); err != nil {
		return err
	}
	c, err := u.waitUpdate(ctx, a, onlineWithin, "the appliance on "+want, func(c lab.Connector) bool { return c.Version == want })
	if err != nil {
		return err
	}
	a.T.Logf("rolled back by hand to %s in slot %s: update %s", c.Version, to, describeUpdate(c.Update))
	u.running, u.slot = want, to
	return nil
}

// slotVersion is the version the other slot holds: the one before the
// running one in the steps so far (the OVA's, as the rollback step comes
// after the install of the next version).
func (u *updater) slotVersion(a *Appliance) (string, error) {
	if u.running != u.f.NextVersion {
		return "", fmt.Errorf("the rollback step expects the appliance on %s (it runs %s)", u.f.NextVersion, u.running)
	}
	return u.f.OwnVersion, nil
}

// stepCDROM puts the next version's update ISO into the CD-ROM drive (as
// an operator does in vSphere): the health screen offers it, U and Y
// install it, and the appliance comes back Online on it in the other slot.
func (u *updater) stepCDROM(ctx context.Context, a *Appliance) error {
	// The ISO make test-bundles wrote carries the metadata of its time;
	// the repository was re-signed by every build after it, and the
	// appliance, which trusts the newer metadata the lab served, refuses
	// the older as a replay. A release remakes the ISO after a refresh
	// (vaultpam-sign update-iso); so does the test, from the same
	// repository and bundle.
	iso := filepath.Join(a.Dir, filepath.Base(u.f.NextISO))
	if err := release.WriteISO(ctx, release.ISO{Out: iso, RepoDir: u.f.Repo, Bundle: u.f.Next, Signature: u.f.Next + ".sig"}); err != nil {
		return fmt.Errorf("remaking the update ISO of %s: %w", u.f.NextVersion, err)
	}
	a.Mark()
	if err := a.ChangeMedium("cd0", iso); err != nil {
		return err
	}
	a.logf("CD-ROM: %s", filepath.Base(u.f.NextISO))
	t0 := time.Now()
	if _, err := a.Expect(regexp.MustCompile(`Update `+regexp.QuoteMeta(u.f.NextVersion)+` available on CD-ROM`), 5*time.Minute); err != nil {
		return fmt.Errorf("the health screen never offered the CD-ROM's update: %w", err)
	}
	if err := a.Press("u"); err != nil {
		return err
	}
	// The install's own confirmation (not the generic "Y yes" one): it
	// says which slot, the reboot and the window.
	if _, err := a.Expect(regexp.MustCompile(`Y install`), keyTimeout); err != nil {
		return err
	}
	if err := a.Press("y"); err != nil {
		return err
	}
	return u.followInstall(ctx, a, t0, u.f.NextVersion)
}
