package nativepkg

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/deploy/internal/shapetest"
	"github.com/vaultpam/appliance/tests/qemu"
)

// guest customisations of the fresh bookworm: root logged in on the
// serial console, DHCP on the QEMU NIC, and 127.0.0.1:8443 inside the VM
// forwarded (systemd-socket-proxyd → 10.0.2.100:8443 → QEMU guestfwd →
// socat) to the lab on the host's loopback, so the connector dials the
// address the lab's certificate names.
var guestFiles = map[string]string{
	"etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf": "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I dumb\n",
	"etc/systemd/network/80-dhcp.network":                            "[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n",
	"etc/systemd/system/lab-proxy.socket":                            "[Socket]\nListenStream=127.0.0.1:8443\n\n[Install]\nWantedBy=sockets.target\n",
	"etc/systemd/system/lab-proxy.service":                           "[Service]\nExecStart=/lib/systemd/systemd-socket-proxyd 10.0.2.100:8443\n",
	"etc/fstab":                                                      "/dev/vda / ext4 rw,errors=remount-ro 0 1\n",
	"etc/hostname":                                                   "debvm\n",
	"root/.bashrc":                                                   "PS1='debvm# '\nbind 'set enable-bracketed-paste off' 2>/dev/null\nexport TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0\n",
}

// The .deb on a fresh Debian bookworm booted in QEMU (OVMF, TCG), one
// boot reused for everything: dpkg -i (post-install enables, never
// enrols), configure, `vaultpam-connector enrol` typed at its prompt on the
// serial console → Online; reboot → Online with the same connector ID, no
// new enrolment; dpkg --purge → no file, user, unit or link left.
func TestDebInstallEnrolRebootPurgeInQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM (-short)")
	}
	qemu.SkipIfUnavailable(t)
	for _, tool := range []string{"mke2fs", "socat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps installs it)", tool)
		}
	}
	tarball := shapetest.DebianTarball(t)
	deb, _ := buildPackages(t)
	lab := shapetest.StartLab(t, 2*time.Second)

	work := t.TempDir()
	root := filepath.Join(work, "root")
	os.MkdirAll(root, 0o755)
	if b, err := exec.Command("tar", "-C", root, "-xpf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("unpacking the Debian system: %v\n%s", err, b)
	}
	for p, content := range guestFiles {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"systemd-networkd.service", "lab-proxy.socket"} {
		if b, err := exec.Command("chroot", root, "systemctl", "enable", u).CombinedOutput(); err != nil {
			t.Fatalf("enabling %s in the guest: %v\n%s", u, err, b)
		}
	}
	copyFile(t, deb, filepath.Join(root, "root", filepath.Base(deb)))
	copyFile(t, lab.CAFile, filepath.Join(root, "root", "lab-ca.pem"))
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	initrds, _ := filepath.Glob(filepath.Join(root, "boot", "initrd.img-*"))
	if len(kernels) != 1 || len(initrds) != 1 {
		t.Fatalf("kernels %v, initrds %v in the guest's /boot", kernels, initrds)
	}
	kernel, initrd := filepath.Join(work, "vmlinuz"), filepath.Join(work, "initrd")
	copyFile(t, kernels[0], kernel)
	copyFile(t, initrds[0], initrd)
	disk := filepath.Join(work, "disk.img")
	if b, err := exec.Command("mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", root, disk, "2G").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, b)
	}
	os.RemoveAll(root)

	cfg := qemu.DefaultConfig(disk)
	cfg.MemoryMiB = 1024
	serial := &lockedLog{}
	cfg.Log = serial
	cfg.ExtraArgs = []string{
		"-kernel", kernel, "-initrd", initrd,
		"-append", "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=0 net.ifnames=1",
		"-nic", "user,model=virtio-net-pci,restrict=on,guestfwd=tcp:10.0.2.100:8443-cmd:socat - TCP:127.0.0.1:" + lab.Port(),
	}
	start := time.Now()
	m, err := qemu.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	defer func() {
		if t.Failed() {
			t.Logf("serial console:\n%s", tailString(serial.String(), 6000))
		}
	}()
	vm := &guest{t: t, m: m}
	vm.waitBoot()
	t.Logf("first boot: shell after %s", time.Since(start).Round(time.Second))

	out := vm.run("dpkg -i /root/"+filepath.Base(deb)+" 2>&1", time.Minute)
	if !strings.Contains(out, "vaultpam-connector is installed but not configured") {
		t.Errorf("dpkg -i output lacks the next steps:\n%s", out)
	}
	if got := vm.run("systemctl is-enabled vaultpam-connector; id -u vaultpam; stat -c '%U %a' /etc/vaultpam/connector.yaml", 30*time.Second); !regexp.MustCompile(`enabled\s+\d+\s+root 644`).MatchString(got) {
		t.Errorf("after install: %q; want enabled, a vaultpam user, the conffile root 644", got)
	}
	// Installing must not enrol: the lab has no connector yet.
	if cs := lab.Connectors(t); len(cs) != 0 {
		t.Errorf("the lab knows %d connectors right after dpkg -i", len(cs))
	}
	vm.run("install -m 0644 /root/lab-ca.pem /etc/vaultpam/ca.pem && printf 'control_plane_url: https://127.0.0.1:8443\\ncontrol_plane_ca_file: /etc/vaultpam/ca.pem\\nconnector_name: deb-vm\\n' > /etc/vaultpam/connector.yaml && systemctl restart vaultpam-connector", time.Minute)
	if got := vm.run("vaultpam-connector status --check live", 30*time.Second); !strings.Contains(got, "live: Waiting for token") {
		t.Fatalf("after configuring: %q", got)
	}

	// The native installer prompt, typed on the VM's console.
	vm.send("vaultpam-connector enrol")
	vm.expect(regexp.MustCompile(`Enrolment token \(input hidden\): `), time.Minute)
	token := lab.Token(t, "deb-vm")
	if err := m.SendLine(token); err != nil {
		t.Fatal(err)
	}
	subs := vm.expect(regexp.MustCompile(`Online: connector (conn-[0-9a-f]+) \(deb-vm\)`), 2*time.Minute)
	id := subs[1]
	vm.waitPrompt(30 * time.Second)
	t.Logf("enrolled and Online as %s after %s", id, time.Since(start).Round(time.Second))
	if got := vm.run("stat -c '%U %a' /var/lib/vaultpam; vaultpam-connector status --json | grep -c '\"mode\": \"autonomous_restart\"'", 30*time.Second); !strings.Contains(got, "vaultpam 700") || !strings.Contains(got, "\n1") {
		t.Errorf("data dir and mode: %q; want vaultpam 700 and autonomous_restart", got)
	}
	vm.waitLab(lab, id, "online")

	// Reboot: same ID, Online again on its own.
	if strings.Contains(serial.String(), token) {
		t.Fatal("the token was echoed on the serial console")
	}
	vm.send("systemctl reboot")
	vm.waitBoot()
	got := vm.run("for i in $(seq 120); do vaultpam-connector status --check ready >/dev/null 2>&1 && break; sleep 1; done; vaultpam-connector status --check ready; vaultpam-connector status --json | sed -n 's/.*\"connector_id\": \"\\(.*\\)\".*/ID=\\1/p'", 3*time.Minute)
	if !strings.Contains(got, "ready: Online") || !strings.Contains(got, "ID="+id) {
		t.Fatalf("after reboot: %q; want ready: Online and ID=%s", got, id)
	}
	vm.waitLab(lab, id, "online")
	if n := len(lab.Connectors(t)); n != 1 {
		t.Errorf("the lab has %d connectors after the reboot, want 1", n)
	}
	t.Logf("after reboot: Online as %s (%s since start)", id, time.Since(start).Round(time.Second))

	// Purge: nothing of the package is left. The same look before the
	// purge must find the package's traces, or it would prove nothing.
	uid := strings.TrimSpace(vm.run("id -u vaultpam", 30*time.Second))
	look := fmt.Sprintf("find / -xdev \\( -name '*vaultpam*' -o -uid %s -o -gid %s \\) -not -path '/root/*' 2>/dev/null; getent passwd vaultpam; getent group vaultpam; systemctl list-unit-files 'vaultpam*' --no-legend; systemctl is-active vaultpam-connector", uid, uid)
	before := vm.run(look, time.Minute)
	for _, want := range []string{"/usr/bin/vaultpam-connector", "/var/lib/vaultpam/identity.json", "/etc/vaultpam\n", "multi-user.target.wants/vaultpam-connector.service", "vaultpam:x:" + uid, "vaultpam-connector.service", "\nactive"} {
		if !strings.Contains(before, want) {
			t.Errorf("before the purge the look for leftovers does not find %q:\n%s", want, before)
		}
	}
	out = vm.run("dpkg --purge vaultpam-connector 2>&1 | tail -3; echo PURGED=$?", 2*time.Minute)
	if !strings.Contains(out, "PURGED=0") {
		t.Fatalf("dpkg --purge: %q", out)
	}
	if left := vm.run(look, time.Minute); strings.TrimSpace(left) != "inactive" {
		t.Errorf("left after dpkg --purge (want only \"inactive\"):\n%s", left)
	}
	vm.send("systemctl poweroff")
	select {
	case <-m.Done():
	case <-time.After(2 * time.Minute):
		t.Error("the VM did not power off")
	}
	t.Logf("install → enrol → Online → reboot → same ID → purge in %s", time.Since(start).Round(time.Second))
}

// guest drives the VM's root shell on the serial console.
type guest struct {
	t   *testing.T
	m   *qemu.Machine
	seq int
}

func (g *guest) send(line string) {
	g.t.Helper()
	if err := g.m.SendLine(line); err != nil {
		g.t.Fatal(err)
	}
}

func (g *guest) expect(re *regexp.Regexp, timeout time.Duration) []string {
	g.t.Helper()
	subs, err := g.m.Expect(re, timeout)
	if err != nil {
		g.t.Fatal(err)
	}
	return subs
}

// waitBoot waits for the automatic root login after a (re)boot.
func (g *guest) waitBoot() {
	g.t.Helper()
	g.expect(regexp.MustCompile(`login: root \(automatic login\)`), 4*time.Minute)
	g.waitPrompt(time.Minute)
}

func (g *guest) waitPrompt(timeout time.Duration) {
	g.t.Helper()
	g.expect(regexp.MustCompile(`debvm# $`), timeout)
}

// run types cmd and returns what it printed, between two markers that
// the typed line itself cannot match.
func (g *guest) run(cmd string, timeout time.Duration) string {
	g.t.Helper()
	g.seq++
	n := g.seq
	g.send(fmt.Sprintf("echo @@BEGIN$((%d+0))@@; %s; echo @@END$((%d+0))@@", n, cmd, n))
	subs := g.expect(regexp.MustCompile(fmt.Sprintf(`(?s)@@BEGIN%d@@\r?\n(.*?)@@END%d@@`, n, n)), timeout)
	return strings.ReplaceAll(subs[1], "\r", "")
}

func (g *guest) waitLab(lab *shapetest.Lab, id, status string) {
	g.t.Helper()
	shapetest.Eventually(g.t, time.Minute, "lab shows "+id+" "+status, func() (bool, string) {
		for _, c := range lab.Connectors(g.t) {
			if c.ID == id {
				return c.Status == status, c.Status
			}
		}
		return false, "unknown"
	})
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lockedLog keeps the serial transcript; QEMU's reader writes it while
// the test may read it.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
