// Package install writes a signed update into the slot that does not run.
//
// Check refuses, before a single byte is written anywhere but the trusted
// metadata store, an update that is not signed by a trusted key, whose
// metadata expired or is older than metadata seen before, whose version is
// not newer than the running one (unless a downgrade is confirmed) or
// failed here before, whose manifest is not the signed one, that does not
// fit the other slot, or while /data is not durable. VerifyBundle then
// reads the whole bundle once against the signed length and SHA-256 and
// every part against the manifest. Only then does Write run its steps:
//
//	record-pending    /data/update/pending.json, stage writing
//	remove-old-uki    the other slot's UKIs go: nothing can boot it now
//	clear-verity-superblock  its hash partition's first 4 KiB zeroed: it
//	                  claims no verity UUID while it is half written
//	write-root        root.squashfs → VPAM-ROOT-<other>, fsync
//	write-verity      root.verity   → VPAM-VERITY-<other>, its superblock
//	                  (first 4 KiB) last, fsync
//	verify-slot       veritysetup verify of the written slot
//	write-uki         uki.efi → .part, fsync, rename to +3, fsync, syncfs
//	boot-next         delete LoaderEntryDefault (version order decides);
//	                  a downgrade sets LoaderEntryOneShot to the new entry
//	record-installed  pending.json, stage installed
//
// The running slot's partitions and UKI are never opened for writing. A
// power cut before write-uki's rename leaves no entry for the other slot,
// so the running slot boots; after it, the other slot is complete and
// verified and boots on trial.
package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/bundle"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/slot"
	"github.com/vaultpam/appliance/update/state"
	"github.com/vaultpam/appliance/update/trust"
	"github.com/vaultpam/appliance/update/version"
	"golang.org/x/sys/unix"
)

// Installer installs updates. All fields are required but Veritysetup,
// Now, Logf and BeforeStep.
type Installer struct {
	Disk     slot.Disk
	ESP      *esp.Dir
	Vars     esp.Vars
	Store    *state.Store
	Verifier *trust.Verifier
	// RunningVersion is the running image's version (os-release).
	RunningVersion string
	// ConnectorID returns the connector's ID now ("" when it has none).
	ConnectorID func(ctx context.Context) (string, error)
	Veritysetup string // "" = veritysetup on PATH
	Now         func() time.Time
	Logf        func(format string, args ...any)
	// BeforeStep runs before each step of Write (and halfway through the
	// slot writes, as "<step>-half"); an error stops there. Tests cut the
	// power there.
	BeforeStep func(step string) error
}

// Request is what to install.
type Request struct {
	Source string // localapi: "control_plane" or "cdrom"
	// MetadataDir holds the signed metadata files.
	MetadataDir string
	// Target is the bundle's name in the signed metadata.
	Target string
	// Bundle is the bundle file; "" means MetadataDir/Target.
	Bundle           string
	ConfirmDowngrade bool
}

// Plan is a checked request: what goes where.
type Plan struct {
	Request
	Kind        state.Kind
	Version     string
	Signed      *trust.Target
	Manifest    bundle.Manifest
	From, To    slot.Slot
	ConnectorID string
	// bundle is the one open file the bundle is read from, from Check to
	// Write: opened once (no symbolic link, FIFO or device; the signed
	// length), then, for a download, replaced by VerifyBundle with a copy
	// only root can reach. Close releases it.
	bundle *os.File
}

// Close releases the plan's bundle file. Safe to call more than once.
func (p *Plan) Close() error {
	if p == nil || p.bundle == nil {
		return nil
	}
	err := p.bundle.Close()
	p.bundle = nil
	return err
}

// bundleReader reads the plan's bundle from its start.
func (p *Plan) bundleReader() (io.Reader, error) {
	if p.bundle == nil {
		return nil, errors.New("the plan's bundle is not open (closed, or the plan was not made by Check)")
	}
	return io.NewSectionReader(p.bundle, 0, 1<<62), nil
}

// openBundle opens path once for the whole install: not through a
// symbolic link, without blocking (a FIFO in its place), a regular file
// of exactly the signed length.
func openBundle(path string, length int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, refuse(localapi.UpdateCodeDamaged, "download or insert the update again", err, "refused before anything was written: the update bundle %s is a symbolic link", path)
		}
		return nil, refuse(localapi.UpdateCodeNothingHere, "download or insert the update again", err, "the update bundle is not there: %v", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, refuse(localapi.UpdateCodeDamaged, "download or insert the update again", bundle.ErrDamaged, "refused before anything was written: the update bundle %s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if fi.Size() != length {
		f.Close()
		return nil, refuse(localapi.UpdateCodeDamaged, "download the update again", bundle.ErrDamaged,
			"refused before anything was written: the bundle is %d bytes, the signed metadata says %d", fi.Size(), length)
	}
	return f, nil
}

func (in *Installer) now() time.Time {
	if in.Now != nil {
		return in.Now().UTC()
	}
	return time.Now().UTC()
}

func (in *Installer) logf(format string, args ...any) {
	if in.Logf != nil {
		in.Logf(format, args...)
	}
}

// Check checks req without reading the whole bundle. A refusal is a
// *Refusal; nothing has been written but the trusted metadata store.
func (in *Installer) Check(ctx context.Context, req Request) (*Plan, error) {
	if req.Bundle == "" {
		req.Bundle = filepath.Join(req.MetadataDir, req.Target)
	}
	if p, err := in.Store.Pending(); err != nil {
		return nil, err
	} else if p != nil {
		return nil, refuse(localapi.UpdateCodeBusy, "wait until it ends; the health screen shows its progress", nil,
			"another change is in progress: %s of %s to slot %s (%s)", p.Kind, p.Version, p.Slot, p.Stage)
	}
	durable, fstype, err := in.Store.Durable()
	if err != nil {
		return nil, err
	}
	if !durable {
		return nil, refuse(localapi.UpdateCodeNoDurable, "repair the data disk (VPAM-DATA) first; the health screen's Recovery section says how", nil,
			"no update while /data is not durable (%s, guided recovery mode): the update records and the rollback protection would be lost at the reboot", fstype)
	}
	signed, err := in.Verifier.Target(req.MetadataDir, req.Target)
	if err != nil {
		return nil, trustRefusal(err)
	}
	p := &Plan{Request: req, Signed: signed, Version: signed.Custom.Version}
	newV, err := version.Parse(signed.Custom.Version)
	if err != nil {
		return nil, refuse(localapi.UpdateCodeDamaged, "get the update again", err, "the signed version %q is not x.y.z", signed.Custom.Version)
	}
	runV, err := version.Parse(in.RunningVersion)
	if err != nil {
		return nil, fmt.Errorf("the running version: %w", err)
	}
	p.Kind = state.KindUpdate
	if !newV.Newer(runV) {
		if !runV.Newer(newV) {
			// The same version in both slots would carry the same verity
			// UUID: the initramfs could open either for either entry, and
			// a trial could neither succeed nor fail truthfully.
			return nil, refuse(localapi.UpdateCodeNotNewer, "this version already runs; nothing to install", nil,
				"refused before anything was written: %s is the running version", newV)
		}
		if !req.ConfirmDowngrade {
			return nil, refuse(localapi.UpdateCodeNotNewer, "installing an older version needs the operator's confirmation on the console (U, then confirm)", nil,
				"refused before anything was written: %s is older than the running %s", newV, runV)
		}
		p.Kind = state.KindDowngrade
	}
	if f, err := in.Store.FailedVersion(newV.String()); err != nil {
		return nil, err
	} else if f != nil {
		return nil, refuse(localapi.UpdateCodeFailedOnce, "a newer release will be offered; this one is not installed again automatically", nil,
			"refused before anything was written: %s failed on this appliance on %s: %s", f.Version, f.At.Format("2006-01-02 15:04 UTC"), f.Reason)
	}
	if p.bundle, err = openBundle(req.Bundle, signed.Length); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	r, _ := p.bundleReader()
	br, err := bundle.NewReader(r, signed.Custom.ManifestSHA256)
	if err != nil {
		return nil, refuse(localapi.UpdateCodeDamaged, "download the update again", err, "refused before anything was written: %v", err)
	}
	p.Manifest = br.Manifest
	if p.Manifest.Version != p.Version {
		return nil, refuse(localapi.UpdateCodeDamaged, "get the update again", bundle.ErrDamaged,
			"refused before anything was written: the bundle holds %s, the signed metadata says %s", p.Manifest.Version, p.Version)
	}
	running, err := in.Disk.Running()
	if err != nil {
		return nil, err
	}
	if p.From, err = in.Disk.Slot(running); err != nil {
		return nil, err
	}
	if p.To, err = in.Disk.Slot(running.Other()); err != nil {
		return nil, err
	}
	if err := p.fits(in.ESP.Path); err != nil {
		return nil, err
	}
	if in.ConnectorID != nil {
		id, err := in.ConnectorID(ctx)
		if err != nil {
			return nil, refuse(CodeNotEnrolled, "the connector must be running for the new slot's health check; look at the health screen", err,
				"refused: the connector's status is not available: %v", err)
		}
		if id == "" {
			return nil, refuse(CodeNotEnrolled, "enrol the connector first (health screen, R)", nil,
				"refused: the connector has no identity, so the new slot could never prove it comes back Online with it")
		}
		p.ConnectorID = id
	}
	ok = true
	return p, nil
}

// fits refuses parts bigger than the other slot's partitions or a UKI the
// ESP has no room for.
func (p *Plan) fits(espDir string) error {
	root, _ := p.Manifest.Part(bundle.PartRoot)
	ver, _ := p.Manifest.Part(bundle.PartVerity)
	uki, _ := p.Manifest.Part(bundle.PartUKI)
	hint := "this release needs a larger disk layout; redeploy the new release's OVA"
	if root.Size > p.To.Root.Size {
		return refuse(localapi.UpdateCodeNoSpace, hint, slot.ErrTooBig, "refused before anything was written: root.squashfs is %d bytes, %s has %d", root.Size, p.To.Root.Label, p.To.Root.Size)
	}
	if ver.Size > p.To.Verity.Size {
		return refuse(localapi.UpdateCodeNoSpace, hint, slot.ErrTooBig, "refused before anything was written: root.verity is %d bytes, %s has %d", ver.Size, p.To.Verity.Label, p.To.Verity.Size)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(espDir, &st); err == nil {
		free := int64(st.Bavail) * int64(st.Bsize)
		// The other slot's old UKI is removed first; count it as free.
		if others, err := (&esp.Dir{Path: espDir}).ForSlot(string(p.To.Name)); err == nil {
			for _, e := range others {
				if fi, err := os.Stat(filepath.Join(espDir, e.Name)); err == nil {
					free += fi.Size()
				}
			}
		}
		if uki.Size+1<<20 > free {
			return refuse(localapi.UpdateCodeNoSpace, "the ESP is full; redeploy the OVA", slot.ErrTooBig, "refused before anything was written: the UKI is %d bytes, the ESP has %d free", uki.Size, free)
		}
	}
	return nil
}

// VerifyBundle reads the whole bundle once: its length and SHA-256 against
// the signed metadata, its manifest against the signed digest and each
// part against the manifest. A damaged bundle is refused here, before
// anything is written.
//
// A download (any source but the CD-ROM, a read-only medium the updater
// mounted itself) lives in the connector's directory, where its owner
// could change it after this check: it is first copied into a file only
// root can reach (an unnamed file in the state directory, gone when the
// plan is closed or the updater stops), and that copy is what is checked
// and written.
func (in *Installer) VerifyBundle(ctx context.Context, p *Plan) error {
	if p.Source != "cdrom" {
		if err := in.stage(ctx, p); err != nil {
			return err
		}
	}
	f, err := p.bundleReader()
	if err != nil {
		return err
	}
	h := sha256.New()
	cr := &ctxReader{ctx: ctx, r: io.TeeReader(f, h)}
	_, checkErr := bundle.Check(cr, p.Signed.Custom.ManifestSHA256)
	n, err := io.Copy(io.Discard, cr) // tar padding and anything after the end
	if err != nil {
		return err
	}
	if cr.n != p.Signed.Length {
		return refuse(localapi.UpdateCodeDamaged, "download the update again", bundle.ErrDamaged,
			"refused before anything was written: the bundle is %d bytes, the signed metadata says %d", cr.n, p.Signed.Length)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != p.Signed.SHA256 {
		return refuse(localapi.UpdateCodeDamaged, "download the update again", bundle.ErrDamaged,
			"refused before anything was written: the bundle's sha256 is %s, the signed metadata says %s", sum, p.Signed.SHA256)
	}
	if checkErr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return refuse(localapi.UpdateCodeDamaged, "download the update again", checkErr, "refused before anything was written: %v", checkErr)
	}
	_ = n
	return nil
}

// stageMargin is the room left on /data after a bundle's staging copy.
const stageMargin = 16 << 20

// stage copies the plan's bundle (exactly the signed length) into an
// unnamed root-only file in the state directory and makes it the plan's
// bundle. /data must have room for it.
func (in *Installer) stage(ctx context.Context, p *Plan) error {
	dir := in.Store.Dir
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		if free := int64(st.Bavail) * int64(st.Bsize); free < p.Signed.Length+stageMargin {
			return refuse(localapi.UpdateCodeNoSpace, "free space on /data (old downloads in /data/update/incoming), then ask again", nil,
				"refused before anything was written: /data has %d bytes free, the update needs %d for its checked copy", free, p.Signed.Length+stageMargin)
		}
	}
	tmp, err := os.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		// No O_TMPFILE: a named file, unlinked at once.
		name := filepath.Join(dir, fmt.Sprintf(".bundle-%d", time.Now().UnixNano()))
		if tmp, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600); err != nil {
			return fmt.Errorf("staging the bundle: %w", err)
		}
		os.Remove(name)
	}
	src, err := p.bundleReader()
	if err == nil {
		var n int64
		n, err = io.CopyN(tmp, &ctxReader{ctx: ctx, r: src}, p.Signed.Length)
		if err == nil && n != p.Signed.Length {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil {
		tmp.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("staging the bundle in %s: %w", dir, err)
	}
	p.Close()
	p.bundle = tmp
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// FailureKind says what kind of failure stopped Write.
type FailureKind int

const (
	// FailState: the update records on /data could not be written.
	FailState FailureKind = iota + 1
	// FailESP: the ESP could not be changed.
	FailESP
	// FailWrite: a slot partition could not be written.
	FailWrite
	// FailDamaged: the bundle changed under us (its bytes no longer match
	// the manifest checked before).
	FailDamaged
	// FailVerify: the written slot does not verify against the root hash.
	FailVerify
	// FailGuard: a step would have touched the running slot.
	FailGuard
	// FailStopped: cancelled (or a test's power cut).
	FailStopped
)

func (k FailureKind) String() string {
	switch k {
	case FailState:
		return "state"
	case FailESP:
		return "esp"
	case FailWrite:
		return "write"
	case FailDamaged:
		return "damaged"
	case FailVerify:
		return "verify"
	case FailGuard:
		return "guard"
	case FailStopped:
		return "stopped"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Failure is a Write that stopped at a step. The running slot is
// unchanged; the other slot has no boot entry.
type Failure struct {
	Step string
	Kind FailureKind
	Err  error
}

func (f *Failure) Error() string {
	return fmt.Sprintf("the install stopped at %s (%s): %v", f.Step, f.Kind, f.Err)
}

func (f *Failure) Unwrap() error { return f.Err }

var errGuard = errors.New("refusing to touch the running slot")
