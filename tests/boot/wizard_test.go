package boot

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/vaultpam/appliance/appliance/image"
	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/tests/qemu"
)

// The lab control plane as the guest sees it: QEMU's user network forwards
// this address (guestfwd) to a relay that dials the lab, which listens on
// the same address inside a namespace the test creates, so the lab's
// server certificate carries it.
const labAddr = "10.0.2.100:8443"

// TestBootWizardEnrols boots the real appliance image in QEMU, answers the
// wizard over the serial console (DHCP, lab URL, a token from the lab), and
// checks that the connector enrolled and is online at the lab.
func TestBootWizardEnrols(t *testing.T) {
	disk := os.Getenv("VAULTPAM_DISK")
	if disk == "" {
		t.Skip("VAULTPAM_DISK is not set; run `make image` (make test sets it)")
	}
	if _, err := os.Stat(disk); err != nil {
		t.Skipf("VAULTPAM_DISK %s is missing; run `make image`", disk)
	}
	man, err := image.ReadManifest(filepath.Join(filepath.Dir(disk), "image.json"))
	if err != nil {
		t.Fatalf("reading image.json next to the disk: %v", err)
	}
	for _, b := range []string{"vaultpam-console", "vaultpam-connector"} {
		if !slices.Contains(man.Binaries, b) {
			t.Skipf("%s is not in the image (image.json binaries %v); run make build image", b, man.Binaries)
		}
	}
	needRoot(t)
	qemu.SkipIfUnavailable(t)
	if _, err := exec.LookPath("debugfs"); err != nil {
		t.Skip("needs debugfs (Debian package e2fsprogs)")
	}
	dir := t.TempDir()

	// A namespace where the lab listens on the guest-visible address.
	ns := fmt.Sprintf("vpb%d", os.Getpid())
	mustRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	mustRun(t, "ip", "-n", ns, "addr", "add", "10.0.2.100/32", "dev", "lo")
	lab := startLabIn(t, ns, filepath.Join(dir, "lab"))
	token, err := lab.Authority.CreateToken("boot-wizard", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "lab", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}

	// The disk: a copy with the lab's CA on CONFIG, as an operator would
	// place a private CA (the wizard uses /config/ca.pem when present).
	img := filepath.Join(dir, "disk.raw")
	mustRun(t, "cp", "--sparse=always", disk, img)
	writeConfigFiles(t, img, man, map[string]string{"ca.pem": string(ca)})

	// QEMU runs inside the namespace; each guest connection to labAddr
	// starts this test binary as a relay to the lab.
	wrapper := filepath.Join(dir, "qemu")
	os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s qemu-system-x86_64 \"$@\"\n", ns)), 0o755)
	relay := filepath.Join(dir, "relay")
	self, _ := os.Executable()
	os.WriteFile(relay, []byte(fmt.Sprintf("#!/bin/sh\n%s=%s exec %s\n", relayEnv, labAddr, self)), 0o755)
	logFile, _ := os.Create(filepath.Join(dir, "serial.log"))
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	cfg := qemu.DefaultConfig(img)
	cfg.QEMU, cfg.Log = wrapper, logFile
	host, port, _ := net.SplitHostPort(labAddr)
	cfg.ExtraArgs = []string{"-netdev", fmt.Sprintf("user,id=n0,restrict=on,guestfwd=tcp:%s:%s-cmd:%s", host, port, relay),
		"-device", "virtio-net-pci,netdev=n0"}
	m, err := qemu.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()

	step := func(want string, timeout time.Duration) {
		t.Helper()
		if err := m.ExpectString(want, timeout); err != nil {
			t.Fatalf("serial console: %v", err)
		}
	}
	send := func(s string) {
		t.Helper()
		time.Sleep(300 * time.Millisecond) // let the console draw before typing on
		if err := m.Send([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	step("Enter begin setup", 10*time.Minute)
	t.Logf("wizard on ttyS0 %s after QEMU started", m.Since().Round(time.Second))
	send("\r")
	step("Choose the network card", time.Minute)
	step("connected", time.Minute)
	send("\r")
	step("Settings for", time.Minute)
	send("\r\r\r\r\r") // DHCP; DNS, NTP from DHCP; hostname as offered; no proxy
	step("Control plane URL", time.Minute)
	send("\x15https://" + labAddr + "\r\x15boot-wizard\r")
	step("Enrolment token", time.Minute)
	send(token + "\r")
	step("Nothing has been changed yet", time.Minute)
	send("\r")
	if _, err := m.Expect(regexp.MustCompile(`Setup is complete|Setup stopped at the failed step`), 5*time.Minute); err != nil {
		t.Fatalf("serial console: %v", err)
	}
	if out := m.Output(); strings.Contains(out[max(0, len(out)-3000):], "Setup stopped") {
		t.Fatalf("setup failed on the appliance; serial output ends:\n%s", out[max(0, len(out)-3000):])
	}
	t.Logf("enrolled %s after QEMU started", m.Since().Round(time.Second))

	var got []string
	for _, c := range lab.Authority.Connectors() {
		got = append(got, c.Name+"="+c.Status)
	}
	if !slices.Contains(got, "boot-wizard=online") {
		t.Errorf("lab connectors = %v, want boot-wizard=online", got)
	}
	send("\r")
	step("R re-enrol", time.Minute)

	// The VGA console (tty1) turns to the health screen once configured.
	time.Sleep(5 * time.Second)
	shot := filepath.Join(dir, "console-health.png")
	if err := m.Screendump(shot); err != nil {
		t.Errorf("screendump: %v", err)
	} else if *update {
		b, _ := os.ReadFile(shot)
		os.WriteFile("../../firstboot/docs/console-health-vga.png", b, 0o644)
	}
}

// startLabIn runs the lab control plane listening on labAddr inside ns.
func startLabIn(t *testing.T, ns, state string) *lab.ControlPlane {
	t.Helper()
	type result struct {
		lab *lab.ControlPlane
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- result{err: err}
			return
		}
		defer func() {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
		}()
		lab, err := lab.New(lab.Config{Authority: lab.DefaultAuthorityConfig(state), Listen: labAddr})
		ch <- result{lab, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("starting the lab control plane in %s: %v", ns, r.err)
	}
	t.Cleanup(func() { r.lab.Close() })
	return r.lab
}
