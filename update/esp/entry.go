// Package esp manages the appliance's boot entries: the UKIs in the ESP's
// \EFI\Linux (mounted at /efi), one per root slot, named
//
//	vaultpam-<version>-<slot>[+LEFT[-DONE]].efi
//
// systemd-boot (Automatic Boot Assessment) counts tries in the name: it
// renames +3 → +2-1 → +1-2 → +0-3 before each boot of a counted entry,
// sorts entries with no tries left last and the rest by version (newest
// first), and systemd-bless-boot drops the counter once the boot is good.
// An entry without a counter is a blessed (good) one.
//
// A new UKI is written under a name systemd-boot ignores (….efi.part),
// fsynced, renamed to its +3 name, and the directory and file system
// synced: a power cut leaves either no new entry or a whole one. A UKI is
// retired by renaming it to ….efi.retired, which systemd-boot ignores too.
// Nothing here ever renames or rewrites the running slot's entry; callers
// pass the slot they may touch.
package esp

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DefaultDir is where the UKIs are on the appliance.
const DefaultDir = "/efi/EFI/Linux"

// Tries is the number of boot attempts a new entry gets.
const Tries = 3

// Suffixes of files systemd-boot ignores.
const (
	PartSuffix    = ".part"
	RetiredSuffix = ".retired"
)

var entryRE = regexp.MustCompile(`^vaultpam-([0-9]+\.[0-9]+\.[0-9]+)-([ABab])(?:\+([0-9]+)(?:-([0-9]+))?)?\.(?i:efi)$`)

// Entry is a UKI on the ESP.
type Entry struct {
	Name    string // file name
	Version string
	Slot    string // "A" or "B"
	Counted bool   // the name carries a counter: on trial
	Left    int    // tries left (counted entries)
	Done    int    // tries used (counted entries)
}

// Parse parses a UKI file name; ok is false for anything else (temporary
// and retired files included).
func Parse(name string) (Entry, bool) {
	m := entryRE.FindStringSubmatch(name)
	if m == nil {
		return Entry{}, false
	}
	e := Entry{Name: name, Version: m[1], Slot: strings.ToUpper(m[2])}
	if m[3] != "" {
		e.Counted = true
		e.Left, _ = strconv.Atoi(m[3])
		if m[4] != "" {
			e.Done, _ = strconv.Atoi(m[4])
		}
	}
	return e, true
}

// Base is the entry's name without counter: what bless-boot renames a good
// entry to.
func (e Entry) Base() string { return BaseName(e.Version, e.Slot) }

// Exhausted reports a counted entry with no tries left: systemd-boot sorts
// it last and falls back to another entry.
func (e Entry) Exhausted() bool { return e.Counted && e.Left == 0 }

// Tried reports a counted entry that was booted at least once.
func (e Entry) Tried() bool { return e.Counted && e.Done > 0 }

// ID is the boot loader's entry ID: the file name in lower case. EFI
// variables (LoaderEntryOneShot, LoaderEntryDefault) name entries by it.
func (e Entry) ID() string { return strings.ToLower(e.Name) }

// BaseName is the name of a good (uncounted) entry.
func BaseName(version, slot string) string {
	return fmt.Sprintf("vaultpam-%s-%s.efi", version, strings.ToUpper(slot))
}

// CountedName is the name of a new entry with tries left.
func CountedName(version, slot string, tries int) string {
	return fmt.Sprintf("vaultpam-%s-%s+%d.efi", version, strings.ToUpper(slot), tries)
}

// slotOf returns the slot of any file this package writes for a slot
// (entries, .part, .retired), or "".
func slotOf(name string) string {
	n := strings.TrimSuffix(strings.TrimSuffix(name, RetiredSuffix), PartSuffix)
	if e, ok := Parse(n); ok {
		return e.Slot
	}
	return ""
}
