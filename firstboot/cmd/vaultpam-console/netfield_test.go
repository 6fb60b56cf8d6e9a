package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/lab"
)

// The IPv6-only network of these tests: the appliance's eth0 gets
// 2001:db8::10/64, the router (the veth peer) is 2001:db8::1, and the lab
// control plane lives behind it on 2001:db8:cafe::1, reachable only
// through the default route. No IPv4 anywhere on the way.
const (
	v6Addr    = "2001:db8::10/64"
	v6Router  = "2001:db8::1"
	v6Lab     = "2001:db8:cafe::1"
	v6LabPort = "8443"
)

// realNetworkdAndConnector makes the fake systemctl start the real
// systemd-networkd (as realNetworkd does) and the real connector (as
// realConnectorUnit does).
func (h *harness) realNetworkdAndConnector(bin string) {
	h.t.Helper()
	if _, err := os.Stat(networkdBin); err != nil {
		h.t.Skipf("needs %s (Debian package systemd)", networkdBin)
	}
	h.realConnectorUnit(bin)
	connector, err := os.ReadFile(filepath.Join(h.bin, "systemctl"))
	if err != nil {
		h.t.Fatal(err)
	}
	// The connector part of that script, without its networkd stand-in.
	body := string(connector)
	body = body[strings.Index(body, `if [ "$1 $2" = "restart vaultpam-connector" ]`):]
	dir := filepath.Dir(h.log)
	pid := filepath.Join(dir, "networkd.pid")
	h.script("systemctl", fmt.Sprintf(`
if [ "$1 $2" = "restart systemd-networkd" ]; then
  if [ -f %[1]s ]; then
    p=$(cat %[1]s); kill $p 2>/dev/null
    i=0; while kill -0 $p 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  fi
  unshare -m --propagation private sh -c '
    mount -t tmpfs tmpfs /run/systemd &&
    mkdir -p /run/systemd/netif && chown systemd-network:systemd-network /run/systemd/netif &&
    mount -o remount,ro /sys &&
    mount --bind %[2]s /etc/systemd/network &&
    exec %[3]s' </dev/null >>%[4]s 2>&1 &
  echo $! > %[1]s
fi
%[5]s`, pid, filepath.Join(h.root, "config/network"), networkdBin, filepath.Join(dir, "networkd.log"), body))
	h.t.Cleanup(func() {
		if b, err := os.ReadFile(pid); err == nil {
			exec.Command("kill", strings.TrimSpace(string(b))).Run()
		}
	})
}

// v6Lab starts the lab control plane on [v6Lab]:8443 in the peer
// namespace, behind the router address on peer0.
func (h *harness) v6LabBehindRouter(state string) *lab.ControlPlane {
	h.t.Helper()
	peer := h.ns + "p"
	run(h.t, "ip", "-n", peer, "addr", "add", v6Router+"/64", "dev", "peer0", "nodad")
	run(h.t, "ip", "-n", peer, "addr", "add", v6Lab+"/128", "dev", "lo")
	run(h.t, "ip", "-n", peer, "link", "set", "lo", "up")
	var cp *lab.ControlPlane
	err := inNS(peer, func() (err error) {
		cp, err = lab.New(lab.Config{Authority: lab.DefaultAuthorityConfig(state), Listen: "[" + v6Lab + "]:" + v6LabPort,
			HeartbeatInterval: time.Second})
		return err
	})
	if err != nil {
		h.t.Fatalf("starting the lab on [%s]: %v", v6Lab, err)
	}
	h.t.Cleanup(func() { cp.Close() })
	return cp
}

// restartHelper runs the root helper again with extra flags.
func (h *harness) restartHelper(extra ...string) {
	h.t.Helper()
	h.stopHelper()
	os.Remove(h.helper)
	args := append([]string{"--net=/run/netns/" + h.ns, "--", "unshare", "--uts", "--",
		consoleBin, "helper", "--root", h.root, "--bin-dir", h.bin, "--listen", h.helper}, extra...)
	cmd := exec.Command("nsenter", args...)
	logf, err := os.OpenFile(h.log+".helper", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.helperCmd = cmd
	h.t.Cleanup(func() { h.stopHelper(); logf.Close() })
	h.waitSocket(h.helper)
	h.share(h.helper)
}

// waitFile polls until the file at path holds want. The deadline only
// bounds a hung test.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	var b []byte
	for end := time.Now().Add(120 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		b, _ = os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
	}
	t.Fatalf("%s never held %q:\n%s", path, want, b)
}

// TestIPv6OnlyTrialRevert: an IPv6-only deployment from the OVF
// environment (no IPv4 at all, static 2001:db8::10/64, the lab's CA in
// vaultpam.ca_cert), applied by the real systemd-networkd, gets the real
// connector Online over IPv6. Then N on the health screen changes the
// IPv6 gateway to one that does not exist: the change is on trial, the
// control plane is unreachable, nobody keeps it, and the previous
// settings come back by themselves — Online again. A second wrong change
// whose console is killed mid-trial comes back all the same: the helper
// holds the deadline.
func TestIPv6OnlyTrialRevert(t *testing.T) {
	h := newHarness(t)
	bin := buildConnector(t)
	h.realNetworkdAndConnector(bin)
	h.restartHelper("--trial-timeout", "20s")
	state := filepath.Join(filepath.Dir(h.log), "lab")
	cp := h.v6LabBehindRouter(state)
	labCA := readFile(t, filepath.Join(state, "ca.pem"))
	os.Remove(filepath.Join(h.root, "config/ca.pem"))
	token, err := cp.Authority.CreateToken("v6-only", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	url := "https://[" + v6Lab + "]:" + v6LabPort
	env := filepath.Join(filepath.Dir(h.log), "ovf-env.xml")
	os.WriteFile(env, []byte(ovfEnvXML(map[string]string{
		"vaultpam.connector_name": "v6-only", "vaultpam.control_plane_url": url, "vaultpam.hostname": "vaultpam-v6",
		"vaultpam.ip": "none", "vaultpam.ipv6": v6Addr, "vaultpam.ipv6_gateway": v6Router, "vaultpam.dns": "2001:db8::53",
		"vaultpam.token": token, "vaultpam.ca_cert": base64.StdEncoding.EncodeToString([]byte(labCA)),
	})), 0o644)

	const s = "v6"
	h.start(s, "tty1", "--socket", h.realSocket(), "--ovf-env", env)
	h.waitFor(s, "State                 Online")
	h.waitFor(s, "Gateway               "+v6Router) // the IPv6 default route, there being no IPv4 one
	labOnline(t, cp, "v6-only")
	unit := readFile(t, filepath.Join(h.root, "config/network/10-vaultpam.network"))
	for _, want := range []string{"Address=" + v6Addr + "\n", "Gateway=" + v6Router + "\n", "LinkLocalAddressing=ipv6\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if strings.Contains(unit, "DHCP=") || strings.Contains(unit, "Address=192.") {
		t.Errorf("an IPv6-only unit asks for IPv4:\n%s", unit)
	}
	addrs := run(t, "ip", "-n", h.ns, "-o", "addr", "show", "dev", "eth0")
	if strings.Contains(addrs, "inet ") || !strings.Contains(addrs, "inet6 "+v6Addr) {
		t.Errorf("eth0 after networkd, want only IPv6:\n%s", addrs)
	}

	// N: the IPv6 gateway changed to one nobody answers for.
	wrong := func(session string) {
		h.keys(session, "n")
		h.waitFor(session, "Setup 1 of 2: Network card")
		h.keys(session, "Enter")
		h.waitFor(session, "IPv4 is off (IPv6 only)")
		h.keys(session, "NPage") // PgDn: the IPv6 and VLAN page
		h.waitFor(session, "IPv6 gateway")
		h.keys(session, "Down", "Down", "Down", "C-u")
		h.typeText(session, "2001:db8::99")
		h.keys(session, "Enter", "Enter")
		h.waitFor(session, "Setup 2 of 2: Summary")
		h.keys(session, "Enter")
		h.waitFor(session, "unless you keep these")
		waitFile(t, filepath.Join(h.root, "config/network/10-vaultpam.network"), "Gateway=2001:db8::99\n")
	}
	wrong(s)
	h.waitFor(s, "The control plane is not reachable yet")
	h.keys(s, "k") // refused: not reachable
	h.waitFor(s, "K keeps the settings once the control plane is reachable")
	scr := h.waitFor(s, "The previous network settings are back")
	if !strings.Contains(scr, "not kept within 20s") {
		t.Errorf("revert screen does not say why:\n%s", scr)
	}
	if got := readFile(t, filepath.Join(h.root, "config/network/10-vaultpam.network")); got != unit {
		t.Errorf("unit after the revert:\n%s\nwant the previous one:\n%s", got, unit)
	}
	h.keys(s, "Enter")
	h.waitFor(s, "State                 Online")
	labOnline(t, cp, "v6-only")

	// Again, and the console dies during the trial: the helper reverts.
	wrong(s)
	run(t, "tmux", "-L", h.tmux, "kill-session", "-t", s)
	waitFile(t, filepath.Join(h.root, "config/network/10-vaultpam.network"), "Gateway="+v6Router+"\n")
	const s2 = "v6again"
	h.start(s2, "tty1", "--socket", h.realSocket(), "--ovf-env", env)
	h.waitFor(s2, "State                 Online")
	labOnline(t, cp, "v6-only")
	if n := strings.Count(readFile(t, h.log+".helper"), "previous network settings restored"); n != 2 {
		t.Errorf("helper restored the settings %d times, want 2:\n%s", n, readFile(t, h.log+".helper"))
	}
}
