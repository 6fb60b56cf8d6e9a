package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const networkdBin = "/lib/systemd/systemd-networkd"

// realNetworkd makes the fake systemctl start the real systemd-networkd
// inside the test namespace (as firstboot/README.md describes): its own mount namespace, a fresh
// tmpfs on /run/systemd, /sys read-only so it does not wait for udev, and
// /config/network bind-mounted on /etc/systemd/network.
func (h *harness) realNetworkd() {
	h.t.Helper()
	if _, err := os.Stat(networkdBin); err != nil {
		h.t.Skipf("needs %s (Debian package systemd)", networkdBin)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		h.t.Skip("needs unshare (Debian package util-linux)")
	}
	dir := filepath.Dir(h.log)
	pid := filepath.Join(dir, "networkd.pid")
	h.script("systemctl", fmt.Sprintf(`
if [ "$1 $2" = "restart systemd-networkd" ]; then
  [ -f %[1]s ] && kill $(cat %[1]s) 2>/dev/null && sleep 0.5
  unshare -m --propagation private sh -c '
    mount -t tmpfs tmpfs /run/systemd &&
    mkdir -p /run/systemd/netif && chown systemd-network:systemd-network /run/systemd/netif &&
    mount -o remount,ro /sys &&
    mount --bind %[2]s /etc/systemd/network &&
    exec %[3]s' </dev/null >>%[4]s 2>&1 &
  echo $! > %[1]s
fi
exit 0`, pid, filepath.Join(h.root, "config/network"), networkdBin, filepath.Join(dir, "networkd.log")))
	h.t.Cleanup(func() {
		if b, err := os.ReadFile(pid); err == nil {
			exec.Command("kill", strings.TrimSpace(string(b))).Run()
		}
	})
}

// dhcpServer runs dnsmasq on the veth peer, handing out 198.51.100.100-150
// with 198.51.100.1 as the router.
func (h *harness) dhcpServer() {
	h.t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		h.t.Skip("needs dnsmasq (Debian package dnsmasq-base)")
	}
	peer := h.ns + "p"
	run(h.t, "ip", "-n", peer, "addr", "add", "198.51.100.1/24", "dev", "peer0")
	dir := filepath.Dir(h.log)
	cmd := exec.Command("ip", "netns", "exec", peer, "dnsmasq", "--no-daemon", "--interface=peer0", "--bind-interfaces",
		"--dhcp-range=198.51.100.100,198.51.100.150,255.255.255.0,1h", "--dhcp-option=3,198.51.100.1", "--port=0",
		"--no-resolv", "--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "dnsmasq.pid"))
	out, _ := os.Create(filepath.Join(dir, "dnsmasq.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("starting dnsmasq: %v", err)
	}
	h.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); out.Close() })
}

// nsState reads eth0's IPv4 addresses and the default gateway in the test
// namespace through netlink.
func (h *harness) nsState() (addrs []string, gw string) {
	h.t.Helper()
	ns, err := netns.GetFromName(h.ns)
	if err != nil {
		h.t.Fatal(err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		h.t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName("eth0")
	if err != nil {
		h.t.Fatal(err)
	}
	as, _ := nh.AddrList(l, netlink.FAMILY_V4)
	for _, a := range as {
		addrs = append(addrs, a.IPNet.String())
	}
	rs, _ := nh.RouteList(l, netlink.FAMILY_V4)
	for _, r := range rs {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw != nil {
			gw = r.Gw.String()
		}
	}
	return addrs, gw
}

// walkWizard answers the wizard: DHCP when static is "", else the static
// address with gateway gw.
func (h *harness) walkWizard(s, url, static, gw string) {
	h.waitFor(s, "Enter begin setup")
	h.keys(s, "Enter")
	h.waitFor(s, "connected")
	h.keys(s, "Enter")
	h.waitFor(s, "Settings for eth0")
	if static != "" {
		h.keys(s, "Right", "Enter")
		h.typeText(s, static)
		h.keys(s, "Enter")
		h.typeText(s, gw)
		h.keys(s, "Enter")
		h.typeText(s, gw)
		h.keys(s, "Enter", "Enter", "Enter", "Enter")
	} else {
		h.keys(s, "Enter", "Enter", "Enter", "Enter", "Enter")
	}
	h.waitFor(s, "Control plane URL")
	h.keys(s, "C-u")
	h.typeText(s, url)
	h.keys(s, "Enter", "Enter")
	h.waitFor(s, "Enrolment token")
	h.typeText(s, goodToken)
	h.keys(s, "Enter")
	h.waitFor(s, "Nothing has been changed yet")
	h.keys(s, "Enter")
	h.waitFor(s, "Setup is complete")
}

// TestNetworkdDHCP: the wizard's DHCP units, applied by the real
// systemd-networkd, get an address and default route from dnsmasq.
func TestNetworkdDHCP(t *testing.T) {
	h := newHarness(t)
	h.realNetworkd()
	h.dhcpServer()
	cp := h.controlPlane("127.0.0.1:0")
	h.start("dh", "tty1", "--ovf-env", "/nonexistent/ovf-env.xml")
	h.walkWizard("dh", "https://"+cp, "", "")
	unit := readFile(t, filepath.Join(h.root, "config/network/10-vaultpam.network"))
	if !strings.Contains(unit, "DHCP=ipv4\n") || !strings.Contains(unit, "Name=eth0\n") {
		t.Errorf("DHCP unit not written as expected:\n%s", unit)
	}
	addrs, gw := h.nsState()
	_, lan, _ := net.ParseCIDR("198.51.100.0/24")
	ok := false
	for _, a := range addrs {
		ip, _, _ := net.ParseCIDR(a)
		ok = ok || lan.Contains(ip)
	}
	if !ok || gw != "198.51.100.1" {
		t.Errorf("after DHCP: eth0 addresses %v, default gateway %q; want one in 198.51.100.0/24 via 198.51.100.1", addrs, gw)
	}
	// The health screen reads the same through netlink.
	h.keys("dh", "Enter")
	h.waitFor("dh", "Gateway               198.51.100.1")
}

// TestNetworkdStatic: the wizard's static units, applied by the real
// systemd-networkd, give exactly the typed address and gateway.
func TestNetworkdStatic(t *testing.T) {
	h := newHarness(t)
	h.realNetworkd()
	cp := h.controlPlane("127.0.0.1:0")
	h.start("st", "tty1", "--ovf-env", "/nonexistent/ovf-env.xml")
	h.walkWizard("st", "https://"+cp, "198.51.100.10/24", "198.51.100.1")
	unit := readFile(t, filepath.Join(h.root, "config/network/10-vaultpam.network"))
	if !strings.Contains(unit, "Address=198.51.100.10/24\n") || !strings.Contains(unit, "Gateway=198.51.100.1\n") {
		t.Errorf("static unit not written as expected:\n%s", unit)
	}
	deadline := time.Now().Add(30 * time.Second)
	var addrs []string
	var gw string
	for time.Now().Before(deadline) {
		if addrs, gw = h.nsState(); gw != "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.Join(addrs, ",") != "198.51.100.10/24" || gw != "198.51.100.1" {
		t.Errorf("after static apply: eth0 addresses %v, default gateway %q; want [198.51.100.10/24] via 198.51.100.1", addrs, gw)
	}
}
