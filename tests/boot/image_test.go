package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/appliance/gpt"
	"github.com/vaultpam/appliance/appliance/image"
)

// TestImagePartitionTable reads the GPT of the built disk (with our own
// reader, not sfdisk) and checks labels, order, sizes and image.json.
func TestImagePartitionTable(t *testing.T) {
	disk, m := builtDisk(t)
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f)
	if err != nil {
		t.Fatalf("gpt.Read(%s): %v", disk, err)
	}
	wantLabels := []string{image.LabelESP, image.LabelRootA, image.LabelVerityA, image.LabelRootB, image.LabelVerityB, image.LabelConfig, image.LabelData}
	var got []string
	for _, p := range tab.Partitions {
		got = append(got, p.Name)
	}
	if strings.Join(got, ",") != strings.Join(wantLabels, ",") {
		t.Fatalf("partition labels = %v, want %v", got, wantLabels)
	}
	if tab.DiskGUID != m.DiskUUID {
		t.Errorf("disk GUID = %s, image.json says %s", tab.DiskGUID, m.DiskUUID)
	}
	const mib = 1 << 20
	byName := map[string]gpt.Partition{}
	for i, p := range tab.Partitions {
		byName[p.Name] = p
		jp := m.Partitions[i]
		if p.Offset() != jp.Offset || p.Size() != jp.Size || p.GUID != jp.UUID || p.TypeGUID != jp.Type {
			t.Errorf("%s: disk has offset %d size %d guid %s type %s; image.json has %+v", p.Name, p.Offset(), p.Size(), p.GUID, p.TypeGUID, jp)
		}
		if p.Offset()%mib != 0 || p.Size()%mib != 0 {
			t.Errorf("%s is not MiB-aligned: offset %d size %d", p.Name, p.Offset(), p.Size())
		}
		if i > 0 && p.FirstLBA <= tab.Partitions[i-1].LastLBA {
			t.Errorf("%s overlaps %s", p.Name, tab.Partitions[i-1].Name)
		}
	}
	if s := byName[image.LabelESP].Size(); s != 256*mib {
		t.Errorf("ESP size = %d MiB, want 256", s/mib)
	}
	if s := byName[image.LabelConfig].Size(); s != 64*mib {
		t.Errorf("CONFIG size = %d MiB, want 64", s/mib)
	}
	if a, b := byName[image.LabelRootA].Size(), byName[image.LabelRootB].Size(); a != b {
		t.Errorf("root slots differ: A %d, B %d", a, b)
	}
	if a, b := byName[image.LabelVerityA].Size(), byName[image.LabelVerityB].Size(); a != b {
		t.Errorf("verity slots differ: A %d, B %d", a, b)
	}
	if m.RootSize > byName[image.LabelRootA].Size() {
		t.Errorf("root image (%d bytes) larger than its slot", m.RootSize)
	}
	if m.RootSize > 150*mib {
		t.Errorf("root image is %d MiB, the goal is at most 150 MiB", m.RootSize/mib)
	}
	if tab.Partitions[len(tab.Partitions)-1].Name != image.LabelData {
		t.Errorf("DATA must be the last partition so it can grow")
	}
	// The bytes in slot A are the root image image.json names.
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, byName[image.LabelRootA].Offset(), m.RootSize)); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.RootSHA256 {
		t.Errorf("slot A sha256 = %s, image.json root_sha256 = %s", got, m.RootSHA256)
	}
	t.Logf("root image %d bytes (%.1f MiB), sha256 %s, root hash %s", m.RootSize, float64(m.RootSize)/mib, m.RootSHA256, m.RootHash)
}

// TestImageVeritySetupVerify checks slot A against its hash tree and root
// hash with veritysetup, then shows one flipped byte is caught.
func TestImageVeritySetupVerify(t *testing.T) {
	disk, m := builtDisk(t)
	needTool(t, "veritysetup", "cryptsetup-bin")
	rootP, _ := m.Partition(image.LabelRootA)
	hashP, _ := m.Partition(image.LabelVerityA)
	root := extract(t, disk, rootP.Offset, m.RootSize, "root.img")
	hash := extract(t, disk, hashP.Offset, hashP.Size, "verity.img")
	if out, err := run("veritysetup", "verify", root, hash, m.RootHash); err != nil {
		t.Fatalf("veritysetup verify of the built root: %v\n%s", err, out)
	}
	if !strings.Contains(m.Cmdline, "vaultpam.roothash="+m.RootHash) {
		t.Errorf("UKI command line %q does not carry the root hash %s", m.Cmdline, m.RootHash)
	}
	flipByte(t, root, m.RootSize/2)
	out, err := run("veritysetup", "verify", root, hash, m.RootHash)
	if err == nil {
		t.Fatalf("veritysetup verify accepted a root with a flipped byte:\n%s", out)
	}
	t.Logf("tampered root rejected: %s", out)
}
