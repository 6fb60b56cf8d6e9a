package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/lab"
)

var (
	connectorOnce sync.Once
	connectorBin  string
	connectorErr  error
)

// buildConnector builds the real vaultpam-connector once per test binary.
func buildConnector(t *testing.T) string {
	t.Helper()
	connectorOnce.Do(func() {
		connectorBin = filepath.Join(filepath.Dir(consoleBin), "vaultpam-connector")
		out, err := exec.Command("go", "build", "-o", connectorBin, "../../../connector/cmd/vaultpam-connector").CombinedOutput()
		if err != nil {
			connectorErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if connectorErr != nil {
		t.Fatalf("building vaultpam-connector: %v", connectorErr)
	}
	return connectorBin
}

// labIn runs the lab control plane inside the harness namespace at addr
// ("127.0.0.1:0" for any port) on state dir.
func (h *harness) labIn(addr, state string) *lab.ControlPlane {
	h.t.Helper()
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
		ns, err := netns.GetFromName(h.ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			ch <- result{err: err}
			return
		}
		defer func() {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
		}()
		lab, err := lab.New(lab.Config{Authority: lab.DefaultAuthorityConfig(state), Listen: addr,
			HeartbeatInterval: time.Second})
		ch <- result{lab, err}
	}()
	r := <-ch
	if r.err != nil {
		h.t.Fatalf("starting the lab control plane: %v", r.err)
	}
	return r.lab
}

// connector runs the real connector in the namespace; stop ends it.
type connectorProc struct {
	cmd *exec.Cmd
}

// realSocket is where the real connector listens (the harness's fake
// connector keeps h.socket).
func (h *harness) realSocket() string { return filepath.Join(filepath.Dir(h.log), "real.sock") }

func (h *harness) runConnector(bin, dataDir, token string) *connectorProc {
	h.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", h.ns, bin, "run")
	cmd.Env = append(os.Environ(), "PAM_AGENT_CONFIG="+filepath.Join(h.root, "config/connector.yaml"),
		"PAM_AGENT_DATA_DIR="+dataDir, "PAM_AGENT_SOCKET="+h.realSocket())
	if token != "" {
		cmd.Env = append(cmd.Env, "PAM_ENROLMENT_TOKEN="+token)
	}
	log, _ := os.OpenFile(filepath.Join(filepath.Dir(h.log), "connector.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("starting vaultpam-connector: %v", err)
	}
	p := &connectorProc{cmd: cmd}
	h.t.Cleanup(p.stop)
	// The connector makes its socket 0660 for its group, which the
	// console is in on the appliance.
	h.waitSocket(h.realSocket())
	h.share(h.realSocket())
	return p
}

func (p *connectorProc) stop() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	}
}

// TestHealthAgainstLab: the real connector in guided mode (tmpfs /data)
// against the lab control plane, watched on the real console: Online; lab
// stopped → Offline (reconnecting) with the reason; lab back → Online; data
// wiped and connector restarted → Needs recovery; recovery token typed on
// the console → Online with the same connector ID.
func TestHealthAgainstLab(t *testing.T) {
	h := newHarness(t)
	bin := buildConnector(t)
	dir := filepath.Dir(h.log)
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o700)
	run(t, "mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", data)
	t.Cleanup(func() { exec.Command("umount", data).Run() })

	state := filepath.Join(dir, "lab")
	lab := h.labIn("127.0.0.1:0", state)
	url := lab.URL()
	addr := strings.TrimPrefix(url, "https://")
	cy := fmt.Sprintf("control_plane_url: %s\ncontrol_plane_ca_file: %s\nconnector_name: lab-connector\n", url, filepath.Join(state, "ca.pem"))
	os.WriteFile(filepath.Join(h.root, "config/connector.yaml"), []byte(cy), 0o644)
	os.MkdirAll(filepath.Join(h.root, "config/network"), 0o755)
	os.WriteFile(filepath.Join(h.root, "config/network/10-vaultpam.network"), []byte("[Match]\nName=eth0\n[Network]\nDHCP=ipv4\n"), 0o644)
	token, err := lab.Authority.CreateToken("lab-connector", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conn := h.runConnector(bin, data, token)

	const s = "l"
	h.start(s, "tty1", "--socket", h.realSocket())
	h.waitFor(s, "State                 Online")
	scr := h.waitFor(s, "Guided recovery (/data is not persistent)")
	id := connectorID(t, h)
	if !strings.Contains(scr, id) {
		t.Errorf("health screen does not show connector ID %s:\n%s", id, scr)
	}

	stopped := time.Now()
	lab.Close()
	scr = h.waitFor(s, "Offline (reconnecting)")
	t.Logf("screen showed Offline %s after the lab stopped (heartbeat 1s)", time.Since(stopped).Round(100*time.Millisecond))
	if !strings.Contains(scr, "Why") {
		t.Errorf("offline without a reason:\n%s", scr)
	}
	lab = h.labIn(addr, state)
	t.Cleanup(func() { lab.Close() })
	h.waitFor(s, "State                 Online")

	// Guided mode: a restart loses the identity.
	conn.stop()
	run(t, "sh", "-c", "rm -rf "+data+"/*")
	h.runConnector(bin, data, "")
	scr = h.waitFor(s, "What happened")
	for _, want := range []string{"without a persistent DATA partition", "select lab-connector and choose Recover", "keeps its ID"} {
		if !strings.Contains(strings.Join(strings.Fields(scr), " "), want) {
			t.Errorf("needs-recovery screen lacks %q:\n%s", want, scr)
		}
	}
	rec, err := lab.Authority.CreateRecoveryToken(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.typeText(s, rec)
	h.keys(s, "Enter")
	h.waitFor(s, "Done: lab-connector is Online")
	h.keys(s, "Enter")
	h.waitFor(s, "Network (DHCP)        eth0 connected")
	if got := connectorID(t, h); got != id {
		t.Errorf("after recovery the connector ID is %s, want the same %s", got, id)
	}
}

// connectorID asks the connector's local API, as `vaultpam-connector
// status --json` would.
func connectorID(t *testing.T, h *harness) string {
	t.Helper()
	cmd := exec.Command(connectorBin, "status", "--json")
	cmd.Env = append(os.Environ(), "PAM_AGENT_SOCKET="+h.realSocket())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("vaultpam-connector status --json: %v", err)
	}
	var st localapi.Status
	if err := json.Unmarshal(out, &st); err != nil || st.ConnectorID == "" {
		t.Fatalf("status %s: %v, no connector ID", out, err)
	}
	return st.ConnectorID
}
