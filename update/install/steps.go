package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vaultpam/appliance/update/bundle"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/slot"
	"github.com/vaultpam/appliance/update/state"
)

// step is one named step of Write and the kind of failure it can have.
type step struct {
	name string
	kind FailureKind
	run  func(w *writeRun, ctx context.Context) error
}

// writeRun is one Write's working state.
type writeRun struct {
	in      *Installer
	plan    *Plan
	pending *state.Pending
	br      *bundle.Reader
	uki     string
}

// Steps lists Write's step names in order.
func Steps() []string {
	var names []string
	for _, s := range steps {
		names = append(names, s.name)
	}
	return names
}

var steps = []step{
	{"record-pending", FailState, (*writeRun).recordPending},
	{"remove-old-uki", FailESP, (*writeRun).removeOldUKI},
	{"clear-verity-superblock", FailWrite, (*writeRun).clearVeritySuperblock},
	{"write-root", FailWrite, func(w *writeRun, ctx context.Context) error {
		return w.writePart(ctx, "write-root", bundle.PartRoot, w.plan.To.Root, 0)
	}},
	// The verity superblock (first 4 KiB: the slot's UUID) goes last.
	{"write-verity", FailWrite, func(w *writeRun, ctx context.Context) error {
		return w.writePart(ctx, "write-verity", bundle.PartVerity, w.plan.To.Verity, 4096)
	}},
	{"verify-slot", FailVerify, (*writeRun).verifySlot},
	{"write-uki", FailESP, (*writeRun).writeUKI},
	{"boot-next", FailESP, (*writeRun).bootNext},
	{"record-installed", FailState, (*writeRun).recordInstalled},
}

// Write installs a checked and verified plan. On failure it returns a
// *Failure and has removed whatever it wrote of the other slot's boot
// entry and the pending record; the running slot is untouched either way.
func (in *Installer) Write(ctx context.Context, p *Plan) (*state.Pending, error) {
	if p.To.Name == p.From.Name || samePartition(p.To, p.From) {
		return nil, &Failure{Step: "plan", Kind: FailGuard, Err: fmt.Errorf("%w: slot %s would be written while it runs", errGuard, p.From.Name)}
	}
	w := &writeRun{in: in, plan: p}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, w.fail(s, FailStopped, err)
		}
		if in.BeforeStep != nil {
			if err := in.BeforeStep(s.name); err != nil {
				return nil, w.fail(s, FailStopped, err)
			}
		}
		in.logf("install %s → slot %s: %s", p.Version, p.To.Name, s.name)
		if err := s.run(w, ctx); err != nil {
			kind := s.kind
			if errors.Is(err, bundle.ErrDamaged) {
				kind = FailDamaged
			}
			if ctx.Err() != nil {
				kind = FailStopped
			}
			return nil, w.fail(s, kind, err)
		}
	}
	return w.pending, nil
}

// fail cleans up after a failed step: the other slot loses any boot entry
// (it may be half written), the pending record goes.
func (w *writeRun) fail(s step, kind FailureKind, err error) error {
	f := &Failure{Step: s.name, Kind: kind, Err: err}
	if kind == FailStopped && w.in.BeforeStep != nil {
		return f // a test's power cut: leave everything as it is
	}
	if s.name != "record-pending" {
		if rerr := w.in.ESP.RemoveSlot(string(w.plan.To.Name)); rerr != nil {
			w.in.logf("install: cleaning the boot entries of slot %s: %v", w.plan.To.Name, rerr)
		}
		if w.plan.Kind == state.KindDowngrade {
			w.in.Vars.Delete(esp.VarOneShot)
		}
		if cerr := w.in.Store.ClearPending(); cerr != nil {
			w.in.logf("install: clearing the pending record: %v", cerr)
		}
	}
	return f
}

func samePartition(a, b slot.Slot) bool {
	return a.Root.Path == b.Root.Path || a.Verity.Path == b.Verity.Path || a.Root.Path == b.Verity.Path || a.Verity.Path == b.Root.Path
}

func (w *writeRun) recordPending(ctx context.Context) error {
	p := w.plan
	now := w.in.now()
	w.pending = &state.Pending{
		Kind: p.Kind, Version: p.Version, Slot: string(p.To.Name),
		FromVersion: w.in.RunningVersion, FromSlot: string(p.From.Name),
		Stage: state.StageWriting, ConnectorID: p.ConnectorID, Source: p.Source,
		Target: p.Target, BundleSHA256: p.Signed.SHA256, Started: now, Updated: now,
	}
	return w.in.Store.SetPending(w.pending)
}

func (w *writeRun) removeOldUKI(ctx context.Context) error {
	return w.in.ESP.RemoveSlot(string(w.plan.To.Name))
}

// clearVeritySuperblock zeroes the first 4 KiB of the other slot's hash
// partition: the initramfs finds a slot by the UUID in that superblock,
// so a half-written slot must not claim the old image's (or, once the
// root is overwritten, any) UUID. root.verity, written after the root,
// brings the new superblock.
func (w *writeRun) clearVeritySuperblock(ctx context.Context) error {
	if err := w.guard(w.plan.To.Verity.Path); err != nil {
		return err
	}
	return slot.WritePart(w.plan.To.Verity, bytes.NewReader(make([]byte, 4096)), 4096)
}

// nextPart opens the bundle on the first call and moves to the part name.
func (w *writeRun) nextPart(name string) (bundle.Part, io.Reader, error) {
	if w.br == nil {
		f, err := w.plan.bundleReader()
		if err != nil {
			return bundle.Part{}, nil, err
		}
		br, err := bundle.NewReader(f, w.plan.Signed.Custom.ManifestSHA256)
		if err != nil {
			return bundle.Part{}, nil, err
		}
		w.br = br
	}
	part, r, err := w.br.Next()
	if err != nil {
		return part, nil, err
	}
	if part.Name != name {
		return part, nil, fmt.Errorf("%w: part %s where %s was expected", bundle.ErrDamaged, part.Name, name)
	}
	return part, r, nil
}

func (w *writeRun) writePart(ctx context.Context, stepName, name string, dst slot.Partition, headLast int64) error {
	if err := w.guard(dst.Path); err != nil {
		return err
	}
	part, r, err := w.nextPart(name)
	if err != nil {
		return err
	}
	r = &ctxReader{ctx: ctx, r: r}
	if w.in.BeforeStep != nil {
		r = &halfway{r: r, at: part.Size / 2, hook: func() error { return w.in.BeforeStep(stepName + "-half") }}
	}
	return slot.WritePartHeadLast(dst, r, part.Size, headLast)
}

// guard refuses a path of the running slot.
func (w *writeRun) guard(path string) error {
	from := w.plan.From
	if path == from.Root.Path || path == from.Verity.Path {
		return fmt.Errorf("%w: %s belongs to slot %s", errGuard, path, from.Name)
	}
	return nil
}

func (w *writeRun) verifySlot(ctx context.Context) error {
	return slot.Verify(ctx, w.in.Veritysetup, w.plan.To, w.plan.Manifest.RootHash)
}

func (w *writeRun) writeUKI(ctx context.Context) error {
	part, r, err := w.nextPart(bundle.PartUKI)
	if err != nil {
		return err
	}
	for _, e := range mustList(w.in.ESP) {
		if e.Slot == string(w.plan.To.Name) {
			return fmt.Errorf("slot %s has a boot entry %s before its UKI was written", e.Slot, e.Name)
		}
	}
	name, err := w.in.ESP.InstallUKI(&ctxReader{ctx: ctx, r: r}, part.Size, w.plan.Version, string(w.plan.To.Name))
	if err != nil {
		return err
	}
	w.uki = name
	return w.br.Close()
}

func mustList(d *esp.Dir) []esp.Entry {
	l, _ := d.List()
	return l
}

func (w *writeRun) bootNext(ctx context.Context) error {
	if err := w.in.Vars.Delete(esp.VarDefault); err != nil {
		return err
	}
	if w.plan.Kind == state.KindDowngrade {
		// Version order would keep the newer running image first: boot
		// the older one once, on trial.
		e, _ := esp.Parse(w.uki)
		return w.in.Vars.Set(esp.VarOneShot, e.ID())
	}
	return nil
}

func (w *writeRun) recordInstalled(ctx context.Context) error {
	w.pending.Stage = state.StageInstalled
	w.pending.UKI = w.uki
	w.pending.Updated = w.in.now()
	return w.in.Store.SetPending(w.pending)
}

// halfway calls hook once when at bytes have been read.
type halfway struct {
	r    io.Reader
	at   int64
	n    int64
	hook func() error
	done bool
}

func (h *halfway) Read(b []byte) (int, error) {
	if !h.done && h.n+int64(len(b)) > h.at {
		if room := h.at - h.n; room > 0 {
			b = b[:room]
		} else {
			h.done = true
			if err := h.hook(); err != nil {
				return 0, err
			}
		}
	}
	n, err := h.r.Read(b)
	h.n += int64(n)
	return n, err
}
