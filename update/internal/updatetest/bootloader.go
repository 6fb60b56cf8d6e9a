package updatetest

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/version"
)

// Boot does what systemd-boot 252 does at power-on with the entries in
// espDir (a model of it, for tests; the QEMU scenario runs the real one):
// LoaderEntryOneShot if set (then deleted), else LoaderEntryDefault, else
// the first entry in its order — counted entries with no tries left
// last, then newest version first, then ID descending. A counted entry's
// counter is bumped (+3 → +2-1) before it starts, and LoaderBootCountPath
// names it. It returns the booted entry (its new name).
func Boot(t testing.TB, espDir string, vars esp.Vars) esp.Entry {
	t.Helper()
	names, _ := os.ReadDir(espDir)
	var all []esp.Entry
	for _, n := range names {
		if e, ok := esp.Parse(n.Name()); ok {
			all = append(all, e)
		}
	}
	if len(all) == 0 {
		t.Fatal("boot: no boot entry on the ESP: the appliance would not boot")
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.Exhausted() != b.Exhausted() {
			return !a.Exhausted()
		}
		va, _ := version.Parse(a.Version)
		vb, _ := version.Parse(b.Version)
		if c := va.Compare(vb); c != 0 {
			return c > 0
		}
		return a.ID() > b.ID()
	})
	pick := all[0]
	for _, v := range []string{esp.VarOneShot, esp.VarDefault} {
		want, ok, _ := vars.Get(v)
		if v == esp.VarOneShot {
			vars.Delete(v)
		}
		if !ok {
			continue
		}
		found := false
		for _, e := range all {
			if m, _ := filepath.Match(want, e.ID()); m {
				pick, found = e, true
				break
			}
		}
		if found {
			break
		}
	}
	vars.Delete(esp.VarBootCountPath)
	if pick.Counted {
		left := max(pick.Left-1, 0)
		newName := strings.Replace(pick.Name, pick.Name[strings.LastIndex(pick.Name, "+"):],
			"+"+strconv.Itoa(left)+"-"+strconv.Itoa(pick.Done+1)+".efi", 1)
		must(t, os.Rename(filepath.Join(espDir, pick.Name), filepath.Join(espDir, newName)))
		must(t, vars.Set(esp.VarBootCountPath, `\EFI\Linux\`+newName))
		pick, _ = esp.Parse(newName)
	}
	return pick
}

// Bless does what systemd-bless-boot good does: the counted entry loses
// its counter.
func Bless(t testing.TB, espDir string, e esp.Entry) {
	t.Helper()
	must(t, os.Rename(filepath.Join(espDir, e.Name), filepath.Join(espDir, e.Base())))
}
