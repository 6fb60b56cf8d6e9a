package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestPlanLayout(t *testing.T) {
	o := DefaultOptions()
	l := planLayout(o, 90*MiB, "seed")
	var labels []string
	for i, p := range l.Partitions {
		labels = append(labels, p.Label)
		if p.Offset%MiB != 0 || p.Size%MiB != 0 {
			t.Errorf("%s not MiB-aligned: %+v", p.Label, p)
		}
		if i > 0 {
			prev := l.Partitions[i-1]
			if p.Offset != prev.Offset+prev.Size {
				t.Errorf("%s starts at %d, want right after %s (%d)", p.Label, p.Offset, prev.Label, prev.Offset+prev.Size)
			}
		}
	}
	want := "VPAM-ESP,VPAM-ROOT-A,VPAM-VERITY-A,VPAM-ROOT-B,VPAM-VERITY-B,VPAM-CONFIG,VPAM-DATA"
	if got := strings.Join(labels, ","); got != want {
		t.Errorf("labels = %s, want %s", got, want)
	}
	if got := l.byLabel(LabelRootA).Size; got != 192*MiB {
		t.Errorf("root slot for 90 MiB = %d MiB, want 192", got/MiB)
	}
	last := l.Partitions[len(l.Partitions)-1]
	if l.DiskSize != last.Offset+last.Size+MiB {
		t.Errorf("disk size %d leaves no room for the backup GPT", l.DiskSize)
	}
	// Same seed, same UUIDs; another seed, others.
	if l2 := planLayout(o, 90*MiB, "seed"); l2.DiskUUID != l.DiskUUID || l2.Partitions[3].UUID != l.Partitions[3].UUID {
		t.Errorf("layout UUIDs are not a function of the seed")
	}
	if l3 := planLayout(o, 90*MiB, "other"); l3.DiskUUID == l.DiskUUID {
		t.Errorf("different seeds gave the same disk UUID")
	}
	uuidRE := regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-8[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
	seen := map[string]bool{l.DiskUUID: true}
	for _, p := range l.Partitions {
		if !uuidRE.MatchString(p.UUID) || seen[p.UUID] {
			t.Errorf("%s UUID %s is malformed or repeated", p.Label, p.UUID)
		}
		seen[p.UUID] = true
	}
	script := l.sfdiskScript()
	if !strings.Contains(script, `name="VPAM-DATA"`) || !strings.Contains(script, "label-id: "+l.DiskUUID) {
		t.Errorf("sfdisk script lacks the data label or disk id:\n%s", script)
	}
}

func TestValidate(t *testing.T) {
	o := DefaultOptions()
	o.OutDir, o.ESPSize, o.DataSize, o.StubPath = "", 3, 1*MiB, ""
	o.Rootfs.Version = "0.2.0-rc1" // systemd-boot would rank it above 0.2.0
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, want := range []string{"output dir", "ESP size", "DATA size", "stub", `version "0.2.0-rc1"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestCmdline(t *testing.T) {
	c := Cmdline("ab12", "0e4b7f2a-1c2d-8e3f-9a4b-5c6d7e8f9a0b", "quiet")
	if strings.Contains(c, "vaultpam.slot=") {
		t.Errorf("Cmdline = %q names a slot; the same UKI must boot from A or B", c)
	}
	for _, want := range []string{"vaultpam.roothash=ab12", "vaultpam.verity=0e4b7f2a-1c2d-8e3f-9a4b-5c6d7e8f9a0b", "console=tty1", "console=ttyS0", "root=/dev/mapper/vroot", "ro", "panic=60", "quiet"} {
		if !strings.Contains(" "+c+" ", " "+want) {
			t.Errorf("Cmdline = %q, want %q in it", c, want)
		}
	}
	if strings.Index(c, "console=tty1") > strings.Index(c, "console=ttyS0") {
		t.Errorf("console=ttyS0 must come last (it becomes /dev/console): %q", c)
	}
}

// TestVerityHashSize checks the planned hash partition holds what
// veritysetup writes for a full slot.
func TestVerityHashSize(t *testing.T) {
	if _, err := exec.LookPath("veritysetup"); err != nil {
		t.Skip("veritysetup is not installed (package cryptsetup-bin)")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	const size = 64 * MiB
	if err := os.WriteFile(data, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(data, size); err != nil {
		t.Fatal(err)
	}
	hash := filepath.Join(dir, "hash")
	sum := strings.Repeat("ab", 32)
	root, uuid, err := formatVerity(t.Context(), data, hash, sum)
	if err != nil {
		t.Fatal(err)
	}
	// The UUID the UKI names is the one in the superblock (what the
	// initramfs reads back with veritysetup dump).
	if out, err := exec.Command("veritysetup", "dump", hash).CombinedOutput(); err != nil || !regexp.MustCompile(`(?m)^UUID:\s+`+uuid+`$`).Match(out) {
		t.Errorf("veritysetup dump (%v) does not show UUID %s:\n%s", err, uuid, out)
	}
	st, _ := os.Stat(hash)
	if planned := verityHashSize(size); st.Size() > planned {
		t.Errorf("veritysetup wrote %d bytes of hash tree for %d MiB, planned %d", st.Size(), size/MiB, planned)
	}
	// The same data and salt give the same root hash.
	if again, againUUID, err := formatVerity(t.Context(), data, hash, sum); err != nil || again != root || againUUID != uuid {
		t.Errorf("second format gave root hash %s, UUID %s (%v); first %s, %s", again, againUUID, err, root, uuid)
	}
}

// TestPEChecksum checks peChecksum against the value objcopy wrote into
// systemd-boot's own binary.
func TestPEChecksum(t *testing.T) {
	data, err := os.ReadFile(DefaultOptions().BootloaderPath)
	if err != nil {
		t.Skip("systemd-boot-efi is not installed")
	}
	pe := int(data[0x3c]) | int(data[0x3d])<<8
	off := pe + 24 + 64
	want := uint32(data[off]) | uint32(data[off+1])<<8 | uint32(data[off+2])<<16 | uint32(data[off+3])<<24
	if want == 0 {
		t.Skip("this systemd-boot carries no PE checksum")
	}
	if got := peChecksum(data, off); got != want {
		t.Errorf("peChecksum = %#x, the file says %#x", got, want)
	}
}
