package esp

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := map[string]Entry{
		"vaultpam-0.1.0-A.efi":        {Version: "0.1.0", Slot: "A"},
		"vaultpam-0.2.0-B+3.efi":      {Version: "0.2.0", Slot: "B", Counted: true, Left: 3},
		"vaultpam-0.2.0-b+2-1.EFI":    {Version: "0.2.0", Slot: "B", Counted: true, Left: 2, Done: 1},
		"vaultpam-10.20.30-B+0-3.efi": {Version: "10.20.30", Slot: "B", Counted: true, Left: 0, Done: 3},
	}
	for name, want := range cases {
		got, ok := Parse(name)
		want.Name = name
		if !ok || got != want {
			t.Errorf("Parse(%q) = %+v %v, want %+v", name, got, ok, want)
		}
	}
	for _, bad := range []string{"vaultpam-0.2.0-B.efi.part", "vaultpam-0.2.0-B+0-3.efi.retired", "vaultpam-0.2.0-C.efi", "linux.efi", "vaultpam-0.2-B.efi"} {
		if _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	e, _ := Parse("vaultpam-0.2.0-B+0-3.efi")
	if !e.Exhausted() || !e.Tried() || e.Base() != "vaultpam-0.2.0-B.efi" || e.ID() != "vaultpam-0.2.0-b+0-3.efi" {
		t.Errorf("entry helpers: %+v", e)
	}
}

func TestInstallRetireRecountRemove(t *testing.T) {
	d := &Dir{Path: t.TempDir()}
	os.WriteFile(filepath.Join(d.Path, "vaultpam-0.1.0-A.efi"), []byte("A"), 0o644)
	os.WriteFile(filepath.Join(d.Path, "vaultpam-0.0.9-B.efi.part"), []byte("stale"), 0o644)
	name, err := d.InstallUKI(strings.NewReader("new UKI bytes"), 13, "0.2.0", "B")
	if err != nil || name != "vaultpam-0.2.0-B+3.efi" {
		t.Fatalf("InstallUKI = %s, %v", name, err)
	}
	if b, _ := os.ReadFile(filepath.Join(d.Path, name)); string(b) != "new UKI bytes" {
		t.Errorf("UKI = %q", b)
	}
	if _, err := d.InstallUKI(strings.NewReader("short"), 13, "0.3.0", "B"); err == nil {
		t.Error("a short UKI was installed")
	}
	if _, err := os.Stat(filepath.Join(d.Path, "vaultpam-0.3.0-B.efi.part")); err == nil {
		t.Error("a failed UKI write left its .part")
	}
	e, _ := d.Find(name)
	good, err := d.Recount(e, -1)
	if err != nil || good != "vaultpam-0.2.0-B.efi" {
		t.Errorf("Recount(-1) = %s %v", good, err)
	}
	if err := d.Retire(good); err != nil {
		t.Fatal(err)
	}
	list := func() string {
		es, _ := os.ReadDir(d.Path)
		var n []string
		for _, e := range es {
			n = append(n, e.Name())
		}
		return strings.Join(n, " ")
	}
	if got := list(); got != "vaultpam-0.0.9-B.efi.part vaultpam-0.1.0-A.efi vaultpam-0.2.0-B.efi.retired" {
		t.Errorf("ESP = %s", got)
	}
	if err := d.RemoveSlot("B"); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != "vaultpam-0.1.0-A.efi" {
		t.Errorf("after RemoveSlot(B): %s", got)
	}
}

func TestVars(t *testing.T) {
	v := Vars{Dir: t.TempDir()}
	if _, ok, err := v.Get(VarOneShot); ok || err != nil {
		t.Errorf("unset: %v %v", ok, err)
	}
	if err := v.Set(VarOneShot, "vaultpam-0.1.0-a.efi"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(v.Dir, "LoaderEntryOneShot-"+LoaderGUID))
	// What the research memo wrote by hand and systemd-boot honoured:
	// attributes 07 00 00 00, UTF-16LE, NUL — 46 bytes.
	if len(raw) != 46 || !bytes.Equal(raw[:6], []byte{7, 0, 0, 0, 'v', 0}) || !bytes.Equal(raw[44:], []byte{0, 0}) {
		t.Errorf("variable bytes = % x", raw)
	}
	if got, ok, _ := v.Get(VarOneShot); !ok || got != "vaultpam-0.1.0-a.efi" {
		t.Errorf("Get = %q %v", got, ok)
	}
	v.Set(VarBootCountPath, `\EFI\Linux\vaultpam-0.2.0-B+2-1.efi`)
	if e, _ := v.BootCountEntry(); e != "vaultpam-0.2.0-B+2-1.efi" {
		t.Errorf("BootCountEntry = %q", e)
	}
	if err := v.Delete(VarOneShot); err != nil {
		t.Fatal(err)
	}
	if err := v.Delete(VarOneShot); err != nil {
		t.Errorf("deleting a missing variable: %v", err)
	}
	if _, ok, _ := v.Get(VarOneShot); ok {
		t.Error("still set after Delete")
	}
}
