package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/lab/inspect"
)

// inNS runs fn on an OS thread switched into namespace ns, so the sockets
// it opens live there.
func inNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// inspectingProxy runs a TLS-inspecting CONNECT proxy on 127.0.0.1 in the
// harness namespace. It re-signs everything with its own CA except the
// tunnel (ALPN vaultpam-tunnel/1), which it passes through, and targets
// it has seen a client certificate for (mutual TLS cannot be inspected;
// firewalls learn such servers in a decryption-exclusion cache).
func (h *harness) inspectingProxy(upstream []byte) *inspect.Proxy {
	h.t.Helper()
	var l net.Listener
	if err := inNS(h.ns, func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		h.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(upstream)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNS(h.ns, func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
		return c, err
	}
	p, err := inspect.New(inspect.Config{Listener: l, Dial: dial, Upstream: pool, Splice: []string{protocol.ALPNTunnel}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { p.Close() })
	return p
}

// realConnectorUnit makes the fake systemctl start (and restart) the real
// vaultpam-connector in the namespace, as systemd does on the appliance,
// beside the networkd stand-in of the harness. Its socket is shared with
// the console's group as the unit does. connector.yaml names
// /config/ca.pem, the appliance's path: the test's root holds it under
// its own directory, which PAM_CONTROL_PLANE_CA_FILE points at (the file
// itself is the one the console wrote).
func (h *harness) realConnectorUnit(bin string) {
	h.t.Helper()
	dir := filepath.Dir(h.log)
	data, pid, sock := filepath.Join(dir, "data-real"), filepath.Join(dir, "connector.pid"), h.realSocket()
	os.MkdirAll(data, 0o700)
	unit := filepath.Join(h.root, "config/network/10-vaultpam.network")
	h.script("systemctl", fmt.Sprintf(`
if [ "$1 $2" = "restart systemd-networkd" ]; then
  dev=$(sed -n 's/^Name=//p' %[1]s); addr=$(sed -n 's/^Address=//p' %[1]s); gw=$(sed -n 's/^Gateway=//p' %[1]s)
  [ -n "$addr" ] && ip addr replace "$addr" dev "$dev"
  [ -n "$gw" ] && ip route replace default via "$gw" dev "$dev"
fi
if [ "$1 $2" = "restart vaultpam-connector" ]; then
  if [ -f %[2]s ]; then
    p=$(cat %[2]s); kill $p 2>/dev/null
    i=0; while kill -0 $p 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
  fi
  rm -f %[3]s
  PAM_CONTROL_PLANE_CA_FILE=%[9]s PAM_AGENT_CONFIG=%[4]s PAM_AGENT_DATA_DIR=%[5]s PAM_AGENT_SOCKET=%[3]s setsid %[6]s run </dev/null >>%[7]s 2>&1 &
  echo $! > %[2]s
  i=0; while [ ! -S %[3]s ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  chgrp %[8]d %[3]s; chmod 660 %[3]s
fi
exit 0`, unit, pid, sock, filepath.Join(h.root, "config/connector.yaml"), data, bin, filepath.Join(dir, "connector.log"), testGID,
		filepath.Join(h.root, "config/ca.pem")))
	h.t.Cleanup(func() {
		if h.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "connector.log"))
			c, _ := os.ReadFile(h.log)
			hl, _ := os.ReadFile(h.log + ".helper")
			h.t.Logf("connector log:\n%s\ncommands:\n%s\nhelper log:\n%s", b, c, hl)
		}
		if b, err := os.ReadFile(pid); err == nil {
			exec.Command("kill", strings.TrimSpace(string(b))).Run()
			time.Sleep(500 * time.Millisecond)
		}
	})
}

// labOnline waits until the lab lists the connector called name online.
func labOnline(t *testing.T, cp *lab.ControlPlane, name string) lab.Connector {
	t.Helper()
	for end := time.Now().Add(90 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for _, c := range cp.Authority.Connectors() {
			if c.Name == name && c.Status == "online" {
				return c
			}
		}
	}
	t.Fatalf("the lab never listed %s online: %+v", name, cp.Authority.Connectors())
	return lab.Connector{}
}

// TestTrustInspectingProxy: first boot behind a TLS-inspecting proxy. The
// lab control plane's private CA is trusted (/config/ca.pem), the proxy's
// is not: the TLS check fails, the console shows the chain the proxy
// presented and its root's SHA-256 fingerprint; the operator compares it
// and trusts it; the checks pass, the real connector enrols through the
// proxy (re-signed: only the trusted proxy CA lets it through), its
// mutual TLS goes through it (passed through), and the lab lists it
// Online.
func TestTrustInspectingProxy(t *testing.T) {
	h := newHarness(t)
	bin := buildConnector(t)
	state := filepath.Join(filepath.Dir(h.log), "lab")
	cp := h.labIn("127.0.0.1:0", state)
	t.Cleanup(func() { cp.Close() })
	labCA := readFile(t, filepath.Join(state, "ca.pem"))
	os.WriteFile(filepath.Join(h.root, "config/ca.pem"), []byte(labCA), 0o644)
	proxy := h.inspectingProxy([]byte(labCA))
	h.realConnectorUnit(bin)
	token, err := cp.Authority.CreateToken("behind-proxy", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fp := settings.Fingerprint(proxy.CACert)

	const s = "tr"
	h.start(s, "tty1", "--socket", h.realSocket(), "--ovf-env", "/nonexistent/ovf-env.xml")
	h.waitFor(s, "Enter begin setup")
	h.keys(s, "Enter")
	h.waitFor(s, "connected")
	h.keys(s, "Enter")
	h.waitFor(s, "Settings for eth0")
	h.keys(s, "Right", "Enter")
	for _, v := range []string{"192.0.2.10/24", "192.0.2.1", "192.0.2.53"} {
		h.typeText(s, v)
		h.keys(s, "Enter")
	}
	h.keys(s, "Enter", "Enter") // NTP, hostname
	h.typeText(s, "http://"+proxy.Addr())
	h.keys(s, "Enter")
	h.waitFor(s, "Control plane URL")
	h.keys(s, "C-u")
	h.typeText(s, cp.URL())
	h.keys(s, "Enter", "C-u")
	h.typeText(s, "behind-proxy")
	h.keys(s, "Enter")
	h.waitFor(s, "Enrolment token")
	h.typeText(s, token)
	h.keys(s, "Enter")
	h.waitFor(s, "Nothing has been changed yet")
	h.keys(s, "Enter")

	// Untrusted: the chain and the fingerprint of its root, the proxy's CA.
	scr := h.waitFor(s, "Root SHA-256")
	for _, want := range []string{"T trust root", "Test Inspecting Proxy CA", fp[:47], fp[48:]} {
		if !strings.Contains(scr, want) {
			t.Errorf("untrusted screen lacks %q:\n%s", want, scr)
		}
	}
	if proxy.Inspected.Load() == 0 {
		t.Errorf("the console's TLS check did not go through the proxy")
	}
	h.keys(s, "t")
	scr = h.waitFor(s, "Does the fingerprint match?")
	if !strings.Contains(scr, fp[:47]) || !strings.Contains(scr, fp[48:]) {
		t.Errorf("trust screen does not show the whole fingerprint %s:\n%s", fp, scr)
	}
	h.keys(s, "y")
	scr = h.waitFor(s, "Setup is complete")
	if !strings.Contains(scr, "behind-proxy is Online") {
		t.Errorf("final screen:\n%s", scr)
	}
	labOnline(t, cp, "behind-proxy")
	t.Logf("proxy: %d TLS sessions re-signed, %d passed through, %d dropped for a client certificate",
		proxy.Inspected.Load(), proxy.Spliced.Load(), proxy.Excluded.Load())
	if proxy.Spliced.Load() == 0 || proxy.Inspected.Load() < 3 {
		t.Errorf("want the checks and the enrolment re-signed and the mutual TLS passed through")
	}
	bundle, err := settings.ParseCABundle([]byte(readFile(t, filepath.Join(h.root, "config/ca.pem"))))
	if err != nil || len(bundle) != 2 || !bundle[1].Equal(proxy.CACert) {
		t.Errorf("/config/ca.pem: %d certificates, %v; want the lab CA and the proxy CA", len(bundle), err)
	}
	cy := readFile(t, filepath.Join(h.root, "config/connector.yaml"))
	for _, want := range []string{"control_plane_ca_file: /config/ca.pem", "proxy_url: http://" + proxy.Addr()} {
		if !strings.Contains(cy, want) {
			t.Errorf("connector.yaml lacks %q:\n%s", want, cy)
		}
	}
	h.keys(s, "Enter")
	h.waitFor(s, "State                 Online")
}

// TestTrustFromOVF: the same proxy, unattended: the OVF environment
// carries vaultpam.ca_cert (the lab's and the proxy's CA, base64 of PEM,
// as the vSphere UI takes it) with the proxy and the token; nobody
// presses a key and the connector is Online.
func TestTrustFromOVF(t *testing.T) {
	h := newHarness(t)
	bin := buildConnector(t)
	state := filepath.Join(filepath.Dir(h.log), "lab")
	cp := h.labIn("127.0.0.1:0", state)
	t.Cleanup(func() { cp.Close() })
	labCA := readFile(t, filepath.Join(state, "ca.pem"))
	os.Remove(filepath.Join(h.root, "config/ca.pem")) // trust only what the OVF brings
	proxy := h.inspectingProxy([]byte(labCA))
	h.realConnectorUnit(bin)
	token, err := cp.Authority.CreateToken("ovf-behind-proxy", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	props := map[string]string{
		"vaultpam.connector_name": "ovf-behind-proxy", "vaultpam.control_plane_url": cp.URL(), "vaultpam.dns": "192.0.2.53",
		"vaultpam.gateway": "192.0.2.1", "vaultpam.hostname": "vaultpam-ovf", "vaultpam.ip": "192.0.2.10/24",
		"vaultpam.proxy": "http://" + proxy.Addr(), "vaultpam.token": token,
		"vaultpam.ca_cert": base64.StdEncoding.EncodeToString(append([]byte(labCA), proxy.CA...)),
	}
	env := filepath.Join(filepath.Dir(h.log), "ovf-env.xml")
	os.WriteFile(env, []byte(ovfEnvXML(props)), 0o644)

	const s = "ovf"
	h.start(s, "tty1", "--socket", h.realSocket(), "--ovf-env", env)
	h.waitFor(s, "State                 Online")
	labOnline(t, cp, "ovf-behind-proxy")
	if proxy.Spliced.Load() == 0 || proxy.Inspected.Load() == 0 {
		t.Errorf("proxy inspected %d and passed through %d connections; want both", proxy.Inspected.Load(), proxy.Spliced.Load())
	}
	bundle, err := settings.ParseCABundle([]byte(readFile(t, filepath.Join(h.root, "config/ca.pem"))))
	if err != nil || len(bundle) != 2 {
		t.Errorf("/config/ca.pem: %d certificates, %v; want the two from the OVF environment", len(bundle), err)
	}
	if strings.Contains(readFile(t, filepath.Join(h.root, "config/connector.yaml")), token) {
		t.Error("the token reached connector.yaml")
	}
}

// ovfEnvXML renders an OVF environment document (VMware's format) with
// props.
func ovfEnvXML(props map[string]string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1" oe:id="">
   <PropertySection>
`)
	for k, v := range props {
		fmt.Fprintf(&b, "      <Property oe:key=%q oe:value=%q/>\n", k, v)
	}
	b.WriteString("   </PropertySection>\n</Environment>\n")
	return b.String()
}

// TestOVFBadCA: a vaultpam.ca_cert that holds a private key is not used
// and not applied unattended: the wizard asks, and its summary names the
// problem (never the key) and what to do.
func TestOVFBadCA(t *testing.T) {
	h := newHarness(t)
	h.controlPlane("192.0.2.1:8443")
	key := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----\n"
	env := filepath.Join(filepath.Dir(h.log), "ovf-env.xml")
	os.WriteFile(env, []byte(ovfEnvXML(map[string]string{
		"vaultpam.connector_name": "bad-ca", "vaultpam.control_plane_url": "https://192.0.2.1:8443", "vaultpam.dns": "192.0.2.53",
		"vaultpam.gateway": "192.0.2.1", "vaultpam.hostname": "vaultpam-ovf", "vaultpam.ip": "192.0.2.10/24", "vaultpam.token": goodToken,
		"vaultpam.ca_cert": base64.StdEncoding.EncodeToString([]byte(key)),
	})), 0o644)
	const s = "badca"
	h.start(s, "tty1", "--ovf-env", env)
	h.waitFor(s, "Enter begin setup")
	h.keys(s, "Enter")
	h.waitFor(s, "connected")
	h.keys(s, "Enter")
	h.waitFor(s, "Settings for eth0")
	h.keys(s, "Enter", "Enter", "Enter", "Enter", "Enter", "Enter", "Enter")
	h.waitFor(s, "Control plane URL")
	h.keys(s, "Enter", "Enter") // the OVF token is kept: on to the summary
	scr := h.waitFor(s, "Nothing has been changed yet")
	flat := strings.Join(strings.Fields(scr), " ")
	for _, want := range []string{"vaultpam.ca_cert from the OVF environment was not used", "is a private key (EC PRIVATE KEY)", "trust the control plane's CA"} {
		if !strings.Contains(flat, want) {
			t.Errorf("summary lacks %q:\n%s", want, scr)
		}
	}
	if strings.Contains(scr, "MHcCAQ") {
		t.Errorf("the summary shows the key:\n%s", scr)
	}
	if len(h.fake.Submits()) != 0 {
		t.Error("a token was handed over before the operator applied")
	}
}

// TestDiagnosticsTrust: on a configured appliance whose control plane's CA
// is not trusted (no /config/ca.pem), D on the health screen shows the
// chain and its root's fingerprint; T, then Esc, trusts nothing; T, Y
// trusts it, restarts the connector, and the checks pass.
func TestDiagnosticsTrust(t *testing.T) {
	h := newHarness(t)
	os.Remove(filepath.Join(h.root, "config/ca.pem"))
	cp := h.controlPlane("127.0.0.1:0")
	h.configured("https://"+cp, onlineStatus())
	root, err := x509.ParseCertificate(h.cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	fp := settings.Fingerprint(root)
	const s = "dt"
	h.start(s, "tty1")
	h.waitFor(s, "R re-enrol")
	h.keys(s, "d")
	scr := h.waitFor(s, "The TLS step failed.")
	for _, want := range []string{"Presented chain", "CN=lab control plane", fp[:47], fp[48:], "T trust this root"} {
		if !strings.Contains(scr, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, scr)
		}
	}
	h.keys(s, "t")
	h.waitFor(s, "Does the fingerprint match?")
	h.keys(s, "Escape")
	h.waitFor(s, "The TLS step failed.")
	if _, err := os.Stat(filepath.Join(h.root, "config/ca.pem")); !os.IsNotExist(err) {
		t.Fatalf("Esc on the trust screen wrote /config/ca.pem (%v)", err)
	}
	h.keys(s, "t")
	h.waitFor(s, "Does the fingerprint match?")
	h.keys(s, "y")
	h.waitFor(s, "All checks passed.")
	bundle, err := settings.ParseCABundle([]byte(readFile(t, filepath.Join(h.root, "config/ca.pem"))))
	if err != nil || len(bundle) != 1 || !bundle[0].Equal(root) {
		t.Errorf("/config/ca.pem after trusting: %d certificates, %v", len(bundle), err)
	}
	if cy := readFile(t, filepath.Join(h.root, "config/connector.yaml")); !strings.Contains(cy, "control_plane_ca_file: /config/ca.pem") {
		t.Errorf("connector.yaml does not point at the bundle:\n%s", cy)
	}
	if !strings.Contains(h.commands(), "systemctl restart vaultpam-connector") {
		t.Errorf("the connector was not restarted to use the CA:\n%s", h.commands())
	}
}
