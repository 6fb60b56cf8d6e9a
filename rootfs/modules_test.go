package rootfs

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseModuleList(t *testing.T) {
	got, err := parseModuleList("# c\nata_piix\n\n  dm-verity # inline\ncrc32c-intel\n")
	if err != nil || strings.Join(got, ",") != "ata_piix,dm_verity,crc32c_intel" {
		t.Errorf("parseModuleList = %v, %v; want [ata_piix dm_verity crc32c_intel]", got, err)
	}
	for _, bad := range []string{"", "# only\n", "a b\n", "a\na\n", "dm-mod\ndm_mod\n", "ahci.ko\n", "kernel/ahci\n"} {
		if _, err := parseModuleList(bad); err == nil {
			t.Errorf("parseModuleList(%q) = nil error, want one", bad)
		}
	}
}

// TestModulesListed pins the controllers and cards vSphere offers.
func TestModulesListed(t *testing.T) {
	mods, err := Modules()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ata_piix", "ahci", "vmw_pvscsi", "mptspi", "mptsas", "nvme", "sr_mod", "sd_mod",
		"vmxnet3", "e1000e", "e1000", "vmw_vmci", "vmw_vsock_vmci_transport", "vmw_balloon",
		"dm_verity", "squashfs", "ext4", "crc32c_generic", "button", "evdev"} {
		if !slices.Contains(mods, want) {
			t.Errorf("modules.txt lacks %s", want)
		}
	}
}

// TestInitramfsModulesKept checks that every module the initramfs hook
// adds is also kept in the root: the root's udev loads the same drivers
// again for devices that appear later (a second disk, a CD-ROM).
func TestInitramfsModulesKept(t *testing.T) {
	mods, err := Modules()
	if err != nil {
		t.Fatal(err)
	}
	hook, err := files.ReadFile("initramfs/hooks/vaultpam-verity")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(hook), "\n") {
		list, ok := strings.CutPrefix(strings.TrimSpace(line), "for m in ")
		if !ok {
			continue
		}
		list, _, _ = strings.Cut(list, ";")
		for _, m := range strings.Fields(list) {
			n++
			if !slices.Contains(mods, moduleName(m)) {
				t.Errorf("the initramfs hook adds %s, modules.txt does not keep it", m)
			}
		}
	}
	if n < 10 {
		t.Errorf("found %d modules in the hook's loops, want the verity and controller lists", n)
	}
}

// fakeKernel writes a small /usr/lib/modules/<v> as depmod leaves it.
func fakeKernel(t *testing.T) (tree, dir string) {
	t.Helper()
	tree = t.TempDir()
	dir = filepath.Join(tree, "usr/lib/modules/6.1.0-test")
	files := map[string]string{
		"modules.dep": "kernel/drivers/ata/ata_piix.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko\n" +
			"kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko\n" +
			"kernel/drivers/scsi/scsi_mod.ko:\n" +
			"kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\n" +
			"kernel/fs/jbd2/jbd2.ko:\n" +
			"kernel/crypto/crc32c_generic.ko:\n" +
			"kernel/drivers/gpu/drm/bochs/bochs.ko: kernel/drivers/gpu/drm/drm.ko\n" +
			"kernel/drivers/gpu/drm/drm.ko:\n" +
			"kernel/drivers/usb/host/uhci-hcd.ko:\n" +
			"kernel/drivers/usb/host/ehci-pci.ko:\n",
		"modules.softdep": "# Soft dependencies extracted from modules themselves.\n" +
			"softdep ext4 pre: crypto-crc32c\nsoftdep uhci_hcd pre: ehci_pci\n",
		"modules.alias":   "alias crypto-crc32c crc32c_generic\nalias pci:v00001234d*sv*sd*bc03sc00i00* bochs\n",
		"modules.builtin": "kernel/drivers/tty/serial/8250/8250.ko\n",
		"modules.order":   "kernel/drivers/ata/ata_piix.ko\nkernel/drivers/gpu/drm/bochs/bochs.ko\nkernel/fs/ext4/ext4.ko\n",
	}
	for _, line := range strings.Split(strings.TrimSpace(files["modules.dep"]), "\n") {
		mod, _, _ := strings.Cut(line, ":")
		files[mod] = "\x7fELF " + mod
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tree, dir
}

func TestPruneModules(t *testing.T) {
	tree, dir := fakeKernel(t)
	var ran []string
	depmod := func(_ context.Context, v string) error { ran = append(ran, v); return nil }
	st, err := pruneModules(context.Background(), tree, []string{"ata_piix", "ext4", "uhci_hcd", "8250"}, depmod)
	if err != nil {
		t.Fatalf("pruneModules: %v", err)
	}
	exists := func(rel string) bool { _, err := os.Stat(filepath.Join(dir, rel)); return err == nil }
	// Named, their modules.dep dependencies, softdeps by name and by alias.
	for _, kept := range []string{"kernel/drivers/ata/ata_piix.ko", "kernel/drivers/ata/libata.ko", "kernel/drivers/scsi/scsi_mod.ko",
		"kernel/fs/ext4/ext4.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/crypto/crc32c_generic.ko",
		"kernel/drivers/usb/host/uhci-hcd.ko", "kernel/drivers/usb/host/ehci-pci.ko"} {
		if !exists(kept) {
			t.Errorf("%s was removed, want it kept", kept)
		}
	}
	for _, gone := range []string{"kernel/drivers/gpu/drm/bochs/bochs.ko", "kernel/drivers/gpu/drm/drm.ko", "kernel/drivers/gpu"} {
		if exists(gone) {
			t.Errorf("%s is still there, want it removed (with its empty directories)", gone)
		}
	}
	if st.Kept != 8 || st.Removed != 2 || st.Version != "6.1.0-test" || !slices.Equal(st.Builtin, []string{"8250"}) {
		t.Errorf("stats = %+v, want 8 kept, 2 removed, version 6.1.0-test, builtin [8250]", st)
	}
	if order, _ := os.ReadFile(filepath.Join(dir, "modules.order")); string(order) != "kernel/drivers/ata/ata_piix.ko\nkernel/fs/ext4/ext4.ko\n" {
		t.Errorf("modules.order = %q, want the kept modules only", order)
	}
	if !slices.Equal(ran, []string{"6.1.0-test"}) {
		t.Errorf("depmod ran for %v, want once for 6.1.0-test", ran)
	}
}

func TestPruneModulesUnknownName(t *testing.T) {
	tree, dir := fakeKernel(t)
	depmod := func(context.Context, string) error { t.Error("depmod ran after an error"); return nil }
	_, err := pruneModules(context.Background(), tree, []string{"ata_piix", "mptsas", "nvme"}, depmod)
	if err == nil || !strings.Contains(err.Error(), "mptsas, nvme") || !strings.Contains(err.Error(), "hint:") {
		t.Fatalf("pruneModules with unknown names = %v, want an error naming mptsas, nvme with a hint", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kernel/drivers/gpu/drm/bochs/bochs.ko")); err != nil {
		t.Errorf("a failed prune removed modules: %v", err)
	}
}
