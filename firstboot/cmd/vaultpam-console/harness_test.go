package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/vaultpam/appliance/firstboot/internal/fakeconnector"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata/")

var consoleBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "vaultpam-console-bin")
	if err != nil {
		panic(err)
	}
	consoleBin = filepath.Join(dir, "vaultpam-console")
	if out, err := exec.Command("go", "build", "-o", consoleBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building vaultpam-console: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// harness runs the real vaultpam-console in tmux (80×25, TERM=linux)
// inside a network namespace with a dummy eth0, against a fake connector on
// a Unix socket, a temp root and fake system commands.
type harness struct {
	t      *testing.T
	root   string
	ns     string
	bin    string // fake commands
	log    string // what the fake commands were asked to do
	socket string
	tmux   string // tmux server socket name
	fake   *fakeconnector.Backend
	caPEM  []byte
	cert   tls.Certificate
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("needs root: the console runs in a network namespace this test creates (skipped by -short, as in make unit)")
	}
	for _, tool := range []string{"tmux", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian package %s; make deps installs it)", tool, map[string]string{"tmux": "tmux", "ip": "iproute2"}[tool])
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newHarness(t *testing.T) *harness {
	needRoot(t)
	dir, err := os.MkdirTemp("/tmp", "vpc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &harness{t: t, root: filepath.Join(dir, "root"), bin: filepath.Join(dir, "bin"), log: filepath.Join(dir, "commands.log"),
		socket: filepath.Join(dir, "connector.sock"), tmux: "vpc" + filepath.Base(dir)[3:], ns: "vpc" + filepath.Base(dir)[3:]}
	os.MkdirAll(filepath.Join(h.root, "config"), 0o755)
	os.MkdirAll(filepath.Join(h.root, "data"), 0o755)
	os.MkdirAll(filepath.Join(h.root, "proc/sys/kernel"), 0o755)
	os.MkdirAll(h.bin, 0o755)
	os.WriteFile(h.log, nil, 0o644)

	run(t, "ip", "netns", "add", h.ns)
	t.Cleanup(func() {
		// End whatever still runs in the namespace (networkd), then drop it.
		out, _ := exec.Command("ip", "netns", "pids", h.ns).Output()
		for _, pid := range strings.Fields(string(out)) {
			if pid == fmt.Sprint(os.Getpid()) {
				continue // a thread of this test visited the namespace
			}
			exec.Command("kill", pid).Run()
		}
		exec.Command("ip", "netns", "del", h.ns).Run()
	})
	run(t, "ip", "-n", h.ns, "link", "set", "lo", "up")
	// eth0 is one end of a veth pair whose peer lives in a second
	// namespace, up, so eth0 has a carrier.
	peer := h.ns + "p"
	run(t, "ip", "netns", "add", peer)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", peer).Run() })
	run(t, "ip", "-n", h.ns, "link", "add", "eth0", "address", "02:00:00:00:00:01", "type", "veth", "peer", "name", "peer0", "netns", peer)
	run(t, "ip", "-n", peer, "link", "set", "peer0", "up")
	run(t, "ip", "-n", h.ns, "link", "set", "eth0", "up")
	// The lab control plane's address in the OVF fixture lives on lo.
	run(t, "ip", "-n", h.ns, "addr", "add", "192.0.2.1/32", "dev", "lo")

	unit := filepath.Join(h.root, "config/network/10-vaultpam.network")
	h.script("systemctl", fmt.Sprintf(`
if [ "$1 $2" = "restart systemd-networkd" ]; then
  # Stand-in for networkd: configure what the unit says (static only).
  dev=$(sed -n 's/^Name=//p' %[1]s); addr=$(sed -n 's/^Address=//p' %[1]s); gw=$(sed -n 's/^Gateway=//p' %[1]s)
  [ -n "$addr" ] && ip addr replace "$addr" dev "$dev"
  [ -n "$gw" ] && ip route replace default via "$gw" dev "$dev"
fi
exit 0`, unit))
	h.script("timedatectl", "echo yes")
	h.script("dmsetup", "echo 'root: 0 180000 verity V'")
	h.script("journalctl", `for i in $(seq 1 30); do echo "2026-11-28T10:00:$i+0000 vaultpam vaultpam-connector[412]: heartbeat ok rtt=12ms line $i"; done`)

	h.fake = fakeconnector.New()
	fakeconnector.Serve(t, h.fake, h.socket)
	h.makeCert()
	t.Cleanup(func() { exec.Command("tmux", "-L", h.tmux, "kill-server").Run() })
	return h
}

// script writes a fake command that logs its arguments, then runs body.
func (h *harness) script(name, body string) {
	s := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >> %s\n%s\n", name, h.log, body)
	if err := os.WriteFile(filepath.Join(h.bin, name), []byte(s), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

// commands returns what the fake commands were asked to do.
func (h *harness) commands() string {
	b, _ := os.ReadFile(h.log)
	return string(b)
}

// makeCert makes a CA-less self-signed certificate for 127.0.0.1 and
// 192.0.2.1 and installs it as the control plane CA in /config/ca.pem.
func (h *harness) makeCert() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lab control plane"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("192.0.2.1")}, DNSNames: []string{"cp.example.test"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		h.t.Fatal(err)
	}
	h.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	h.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	os.WriteFile(filepath.Join(h.root, "config/ca.pem"), h.caPEM, 0o644)
}

// controlPlane serves HTTPS at addr inside the namespace and returns the
// address it listens on.
func (h *harness) controlPlane(addr string) string {
	h.t.Helper()
	var l net.Listener
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromName(h.ns)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		// Back to the test's namespace; a thread that cannot return is
		// left locked, so the runtime retires it.
		defer func() {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
		}()
		l, err = net.Listen("tcp", addr)
		errc <- err
	}()
	if err := <-errc; err != nil {
		h.t.Fatalf("listening in namespace %s: %v", h.ns, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{h.cert}}, ErrorLog: nil}
	go srv.ServeTLS(l, "", "")
	h.t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// start runs the console in tmux session name with extra flags, on a
// terminal like the VGA console's: TERM=linux, 80×25.
func (h *harness) start(session, tty string, extra ...string) {
	h.t.Helper()
	h.startOn(session, tty, vga, extra...)
}

// terminal is what a console runs on.
type terminal struct {
	term       string
	cols, rows int
}

var (
	vga    = terminal{"linux", 80, 25} // tty1 with the kernel's 8×16 font at 640×400
	serial = terminal{"vt220", 80, 24} // ttyS0 as the unit sets it up
)

// startOn runs the console in tmux session name on a terminal like term.
func (h *harness) startOn(session, tty string, term terminal, extra ...string) {
	h.t.Helper()
	args := []string{"ip", "netns", "exec", h.ns, consoleBin, "--root", h.root, "--socket", h.socket, "--bin-dir", h.bin,
		"--tty", tty, "--address-timeout", "30s", "--step-timeout", "5s", "--enrol-timeout", "60s"}
	args = append(args, extra...)
	cmd := "TERM=" + term.term + " " + strings.Join(args, " ") + " 2>>" + h.log + ".stderr; echo CONSOLE-EXITED; sleep 600"
	run(h.t, "tmux", "-L", h.tmux, "-f", "/dev/null", "new-session", "-d", "-s", session,
		"-x", fmt.Sprint(term.cols), "-y", fmt.Sprint(term.rows), cmd)
}

// keys sends tmux key names (Enter, Up, C-u, …) to session.
func (h *harness) keys(session string, keys ...string) {
	h.t.Helper()
	run(h.t, "tmux", append([]string{"-L", h.tmux, "send-keys", "-t", session}, keys...)...)
}

// typeText types s literally.
func (h *harness) typeText(session, s string) {
	h.t.Helper()
	run(h.t, "tmux", "-L", h.tmux, "send-keys", "-t", session, "-l", s)
}

func (h *harness) screen(session string) string {
	out, _ := exec.Command("tmux", "-L", h.tmux, "capture-pane", "-p", "-t", session).Output()
	return string(out)
}

// waitFor polls the screen until it shows want, and returns it. A generous
// deadline only bounds a hung test; nothing here measures speed.
func (h *harness) waitFor(session, want string) string {
	h.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var s string
	for time.Now().Before(deadline) {
		s = h.screen(session)
		if strings.Contains(s, want) {
			// Let the frame settle: the same screen twice in a row.
			time.Sleep(150 * time.Millisecond)
			if s2 := h.screen(session); s2 == s || strings.Contains(s2, want) {
				return h.screen(session)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(h.log + ".stderr")
	h.t.Fatalf("screen never showed %q; last screen:\n%s\nstderr:\n%s", want, s, b)
	return ""
}

// golden compares a screen with testdata/<name>.golden after replacing
// run-specific text (ports, paths).
func (h *harness) golden(name, screen string, replace ...string) {
	h.t.Helper()
	r := strings.NewReplacer(append(replace, h.root, "ROOT")...)
	got := r.Replace(screen)
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(got, "\n"), "\n") {
		lines = append(lines, strings.TrimRight(l, " "))
	}
	got = strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", name+".golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			h.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		h.t.Fatalf("reading golden screen (run with -update to create it): %v", err)
	}
	if got != string(want) {
		h.t.Errorf("screen %s differs from %s (run with -update if the change is intended)\ngot:\n%s\nwant:\n%s", name, path, got, want)
	}
}

// answerStatic walks the wizard from the welcome screen through the summary
// and applies: eth0 static 192.0.2.10/24 via 192.0.2.1 with DNS 192.0.2.53,
// control plane url with the default name, and token.
func (h *harness) answerStatic(session, url, token string) {
	h.t.Helper()
	h.waitFor(session, "Enter begin setup")
	h.keys(session, "Enter")
	h.waitFor(session, "connected")
	h.keys(session, "Enter")
	h.waitFor(session, "Settings for eth0")
	h.keys(session, "Right", "Enter")
	for _, v := range []string{"192.0.2.10/24", "192.0.2.1", "192.0.2.53"} {
		h.typeText(session, v)
		h.keys(session, "Enter")
	}
	h.keys(session, "Enter", "Enter", "Enter")
	h.waitFor(session, "Control plane URL")
	h.keys(session, "C-u")
	h.typeText(session, url)
	h.keys(session, "Enter", "Enter")
	h.waitFor(session, "Enrolment token")
	h.typeText(session, token)
	h.keys(session, "Enter")
	h.waitFor(session, "Nothing has been changed yet")
	h.keys(session, "Enter")
}
