package gpt

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadSfdisk checks the reader against a table written by sfdisk.
func TestReadSfdisk(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk (package fdisk) is not installed")
	}
	path := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 16<<20); err != nil {
		t.Fatal(err)
	}
	script := `label: gpt
label-id: 0BE3E1D2-9A0B-4C6F-8E4F-0F3C8D7A6B5C
unit: sectors
start=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=11111111-2222-4333-8444-555555555555, name="VPAM-ESP"
start=6144, size=8192, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=66666666-7777-4888-9999-AAAAAAAAAAAA, name="VPAM-DATA"
`
	cmd := exec.Command("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := Read(f)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := []Partition{
		{Number: 1, Name: "VPAM-ESP", TypeGUID: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", GUID: "11111111-2222-4333-8444-555555555555", FirstLBA: 2048, LastLBA: 6143},
		{Number: 2, Name: "VPAM-DATA", TypeGUID: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", GUID: "66666666-7777-4888-9999-AAAAAAAAAAAA", FirstLBA: 6144, LastLBA: 14335},
	}
	if diff := cmp.Diff(want, tab.Partitions); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	if tab.DiskGUID != "0BE3E1D2-9A0B-4C6F-8E4F-0F3C8D7A6B5C" {
		t.Errorf("DiskGUID = %s", tab.DiskGUID)
	}
	if p, ok := tab.ByName("VPAM-DATA"); !ok || p.Offset() != 6144*512 || p.Size() != 8192*512 {
		t.Errorf("ByName(VPAM-DATA) = %+v, %v", p, ok)
	}

	// A flipped byte in the entries must be caught by the CRC.
	data, _ := os.ReadFile(path)
	data[2*512+60] ^= 0xff
	bad := filepath.Join(t.TempDir(), "bad.raw")
	os.WriteFile(bad, data, 0o644)
	g, _ := os.Open(bad)
	defer g.Close()
	if _, err := Read(g); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Errorf("Read(corrupted) error = %v, want a CRC error", err)
	}
}
