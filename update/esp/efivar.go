package esp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"golang.org/x/sys/unix"
)

// DefaultVarsDir is efivarfs, mounted by systemd.
const DefaultVarsDir = "/sys/firmware/efi/efivars"

// LoaderGUID is the vendor GUID of systemd-boot's variables.
const LoaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// systemd-boot's variables the updater reads or writes.
const (
	// LoaderEntryOneShot: the entry ID to boot next, once (read and
	// deleted by systemd-boot at every boot).
	VarOneShot = "LoaderEntryOneShot"
	// LoaderEntryDefault: an entry ID pattern that beats loader.conf's
	// default; set by someone pressing d in the boot menu. The updater
	// deletes it so version order (and fallback) decide.
	VarDefault = "LoaderEntryDefault"
	// LoaderBootCountPath: \EFI\Linux\<name> of a counted entry being
	// booted (volatile); absent on uncounted boots.
	VarBootCountPath = "LoaderBootCountPath"
	// LoaderEntrySelected: the ID of the entry booted.
	VarEntrySelected = "LoaderEntrySelected"
)

// Attributes of the variables the updater writes: non-volatile, boot
// service and runtime access.
const attrNVBSRT = 0x7

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutableFL = 0x10

// Vars reads and writes systemd-boot's EFI variables through efivarfs.
type Vars struct {
	Dir string // DefaultVarsDir on the appliance
}

func (v Vars) path(name string) string {
	return filepath.Join(v.Dir, name+"-"+LoaderGUID)
}

// Get returns a string variable's value; ok is false when it is not set.
func (v Vars) Get(name string) (string, bool, error) {
	b, err := os.ReadFile(v.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading EFI variable %s: %w", name, err)
	}
	if len(b) < 4 {
		return "", false, fmt.Errorf("EFI variable %s is %d bytes, shorter than its attributes", name, len(b))
	}
	return decodeUTF16(b[4:]), true, nil
}

// Set writes a string variable (UTF-16LE, NUL-terminated, non-volatile).
func (v Vars) Set(name, value string) error {
	b := make([]byte, 4, 4+2*len(value)+2)
	binary.LittleEndian.PutUint32(b, attrNVBSRT)
	for _, u := range utf16.Encode([]rune(value + "\x00")) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	p := v.path(name)
	if err := setMutable(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("writing EFI variable %s: %w", name, err)
	}
	// efivarfs takes the whole variable in one write.
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("writing EFI variable %s: %w", name, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing EFI variable %s: %w", name, err)
	}
	return f.Close()
}

// Delete removes a variable; a missing one is not an error.
func (v Vars) Delete(name string) error {
	p := v.path(name)
	if err := setMutable(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("deleting EFI variable %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting EFI variable %s: %w", name, err)
	}
	return nil
}

// BootCountEntry returns the file name of the counted entry being booted
// (from LoaderBootCountPath), or "" on an uncounted boot.
func (v Vars) BootCountEntry() (string, error) {
	p, ok, err := v.Get(VarBootCountPath)
	if err != nil || !ok {
		return "", err
	}
	p = strings.ReplaceAll(p, `\`, "/")
	return filepath.Base(p), nil
}

// setMutable clears efivarfs's immutable flag (set on every variable so a
// stray write cannot brick firmware). File systems without the flag
// (tests) are fine.
func setMutable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return nil
		}
		return err
	}
	if flags&fsImmutableFL == 0 {
		return nil
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFL))
}

func decodeUTF16(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
