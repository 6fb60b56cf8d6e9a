package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vaultpam/appliance/tests/vmdisk"
)

// TestShippedOVADisk takes the VMDK out of the shipped OVA (VAULTPAM_OVA,
// built by the same `make ova` as VAULTPAM_DISK), checks it with qemu-img
// and compares it with the raw disk byte for byte: the disk the boot tests
// use is the disk users get. tests/scenario boots the OVA's own disk.
func TestShippedOVADisk(t *testing.T) {
	disk, _ := builtDisk(t)
	ova := os.Getenv("VAULTPAM_OVA")
	if ova == "" {
		t.Skip("VAULTPAM_OVA is not set; run `make test` (it builds the OVA and sets it)")
	}
	if _, err := os.Stat(ova); err != nil {
		t.Skipf("VAULTPAM_OVA %s is missing; run `make ova`", ova)
	}
	needTool(t, "qemu-img", "qemu-utils")
	raw := filepath.Join(t.TempDir(), "from-ova.raw")
	if err := vmdisk.FromOVA(ova, raw); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", disk, raw).CombinedOutput()
	if err != nil {
		t.Fatalf("the OVA's disk differs from %s: %v\n%s\nhint: run `make ova` again so both come from one build", disk, err, out)
	}
	t.Logf("%s: its disk equals %s (%s)", filepath.Base(ova), disk, out)
}
