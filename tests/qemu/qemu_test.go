package qemu

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig("")
	c.Format, c.DiskBus, c.MemoryMiB = "vmdk", "floppy", 16
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, want := range []string{"disk is empty", `format "vmdk"`, `bus "floppy"`, "256 MiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if err := DefaultConfig("disk.raw").Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
}

func TestArgs(t *testing.T) {
	c := DefaultConfig("/d.raw")
	c.Snapshot = true
	got := strings.Join(c.args("/v.fd", "/q.sock"), " ")
	for _, want := range []string{"-accel tcg", "file=/d.raw,format=raw", "snapshot=on", "-serial stdio", "unix:/q.sock,server=on,wait=off", "-nic none", "virtio-blk-pci"} {
		if !strings.Contains(got, want) {
			t.Errorf("args = %s, want %q in it", got, want)
		}
	}
	if strings.Contains(got, "kvm") {
		t.Errorf("args = %s, must not use KVM (it hangs on these machines)", got)
	}
}

// TestFirmwareBootsToSerial boots OVMF on a blank disk: the firmware
// reports on the serial console that nothing is bootable, and the harness
// sees it, takes a screendump and stops the machine.
func TestFirmwareBootsToSerial(t *testing.T) {
	SkipIfUnavailable(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "blank.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 8<<20); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	c := DefaultConfig(disk)
	c.MemoryMiB, c.CPUs = 256, 1
	c.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	m, err := Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	// OVMF's boot manager names the devices it tries on the serial line.
	if _, err := m.Expect(regexp.MustCompile(`BdsDxe|Boot\d{4}|UEFI`), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "screen.png")
	if err := m.Screendump(png); err != nil {
		t.Fatalf("Screendump: %v", err)
	}
	data, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screendump is not a PNG (%d bytes, %v)", len(data), err)
	}
	m.Kill()
	if !strings.Contains(log.String(), m.Output()[:10]) {
		t.Errorf("Log did not receive the serial output")
	}
	if _, err := m.Expect(regexp.MustCompile(`never printed`), time.Second); err == nil {
		t.Errorf("Expect after exit = nil error, want one")
	}
}
