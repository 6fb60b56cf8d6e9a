package esp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is the ESP's \EFI\Linux directory. Methods are not safe for
// concurrent use.
type Dir struct {
	Path string // DefaultDir on the appliance
	// BeforeStep, when set, runs before each step of InstallUKI (named by
	// the Step constants); an error stops there. Tests kill the writer
	// there to cut the power.
	BeforeStep func(step string) error
}

// Steps of InstallUKI, in order.
const (
	StepUKIWrite  = "uki-write"  // writing the .part file
	StepUKISync   = "uki-fsync"  // fsync of the .part file
	StepUKIRename = "uki-rename" // rename to the +3 name
	StepUKISyncFS = "uki-syncfs" // fsync of the directory, syncfs
)

func (d *Dir) step(s string) error {
	if d.BeforeStep != nil {
		return d.BeforeStep(s)
	}
	return nil
}

// List returns the boot entries, sorted by name.
func (d *Dir) List() ([]Entry, error) {
	names, err := d.names()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, n := range names {
		if e, ok := Parse(n); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// ForSlot returns the boot entries of slot.
func (d *Dir) ForSlot(slot string) ([]Entry, error) {
	all, err := d.List()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range all {
		if e.Slot == strings.ToUpper(slot) {
			out = append(out, e)
		}
	}
	return out, nil
}

// Find returns the entry called name (as it is now), or false.
func (d *Dir) Find(name string) (Entry, bool) {
	if _, err := os.Lstat(filepath.Join(d.Path, name)); err != nil {
		return Entry{}, false
	}
	return Parse(name)
}

func (d *Dir) names() ([]string, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return nil, fmt.Errorf("reading the boot entries in %s: %w (hint: is the ESP mounted at /efi?)", d.Path, err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// RemoveSlot deletes every file of slot (entries, temporary and retired
// files) and makes the deletion durable. From then on nothing can boot
// slot: the first thing an install does before it writes the slot.
func (d *Dir) RemoveSlot(slot string) error {
	names, err := d.names()
	if err != nil {
		return err
	}
	for _, n := range names {
		if slotOf(n) == strings.ToUpper(slot) {
			if err := os.Remove(filepath.Join(d.Path, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing the boot entry %s: %w", n, err)
			}
		}
	}
	return d.sync()
}

// InstallUKI writes the UKI read from r (size bytes) as a new counted
// entry for version in slot, with Tries tries, and returns its name. The
// bytes go to a temporary name systemd-boot ignores; only after they are
// durable is the file renamed to its entry name, and the rename made
// durable. An error or a power cut before the rename leaves no entry.
func (d *Dir) InstallUKI(r io.Reader, size int64, version, slot string) (string, error) {
	name := CountedName(version, slot, Tries)
	tmp := filepath.Join(d.Path, BaseName(version, slot)+PartSuffix)
	if err := d.step(StepUKIWrite); err != nil {
		return "", err
	}
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("writing the UKI: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("the UKI ended after %d of %d bytes", n, size)
	}
	if err == nil {
		if err = d.step(StepUKISync); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("writing the UKI: %w", err)
	}
	if err := d.step(StepUKIRename); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, filepath.Join(d.Path, name)); err != nil {
		return "", fmt.Errorf("naming the UKI %s: %w", name, err)
	}
	if err := d.step(StepUKISyncFS); err != nil {
		return "", err
	}
	return name, d.sync()
}

// Retire renames the entry name to a name systemd-boot ignores, so it is
// never booted again, and makes that durable.
func (d *Dir) Retire(name string) error {
	if _, ok := Parse(name); !ok {
		return fmt.Errorf("%s is not a boot entry", name)
	}
	if err := os.Rename(filepath.Join(d.Path, name), filepath.Join(d.Path, name+RetiredSuffix)); err != nil {
		return fmt.Errorf("retiring the boot entry %s: %w", name, err)
	}
	return d.sync()
}

// Recount renames entry e to carry a fresh counter of tries (for a trial
// boot of an image that was good before: the manual rollback), or, with
// tries < 0, to its uncounted (good) name. It returns the new name.
func (d *Dir) Recount(e Entry, tries int) (string, error) {
	name := e.Base()
	if tries >= 0 {
		name = CountedName(e.Version, e.Slot, tries)
	}
	if name == e.Name {
		return name, nil
	}
	if err := os.Rename(filepath.Join(d.Path, e.Name), filepath.Join(d.Path, name)); err != nil {
		return "", fmt.Errorf("renaming the boot entry %s to %s: %w", e.Name, name, err)
	}
	return name, d.sync()
}

// sync makes the directory's changes durable: fsync of the directory, then
// syncfs of the whole file system (FAT keeps allocation tables apart from
// the directory).
func (d *Dir) sync() error {
	f, err := os.Open(d.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", d.Path, err)
	}
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", d.Path, err)
	}
	return nil
}
