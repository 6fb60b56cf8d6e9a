package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func (e *env) addResource(name, addr, connector string) {
	e.t.Helper()
	if _, err := lab(e.t, "resources", "add", "--state", e.state, "--name", name, "--address", addr, "--connector", connector); err != nil {
		e.t.Fatal(err)
	}
}

// connectorStatus asks the connector process itself (status --json).
func (e *env) connectorStatus() map[string]any {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "vaultpam-connector"), "status", "--json", "--socket", e.socket)
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	var st map[string]any
	json.Unmarshal(out, &st)
	return st
}

// refused runs connect and expects it to fail with reason in its output.
func (e *env) refused(resource, reason string) {
	e.t.Helper()
	p := e.connect(resource)
	p.stdin.Close()
	err := p.wait(e.t)
	if err == nil || !strings.Contains(p.out.String(), reason) {
		e.t.Fatalf("connect %s: err %v, output %q; want a refusal with %q", resource, err, p.out.String(), reason)
	}
}

// SIGSTOP freezes the connector: its heartbeats stop while its TCP
// connection stays open, so only heartbeat tracking can notice. The lab
// marks it offline, refuses to route to it, ends the in-flight session
// with a reason; SIGCONT brings it back online.
func TestHeartbeatLossOfflineAndBack(t *testing.T) {
	target := echoServer(t)
	e := newEnv(t, nil, 300*time.Millisecond)
	c := e.waitStatus("online")
	e.addResource("echo", target, c.ID)
	s := e.connect("echo")
	echo(t, s, "before the freeze")

	stopped := time.Now()
	e.conn.signal(syscall.SIGSTOP)
	off := e.waitStatus("offline")
	t.Logf("offline %s after SIGSTOP (heartbeat interval %s); last heartbeat %v", time.Since(stopped).Round(time.Millisecond), e.heartbeat, off.LastHeartbeat)
	if !strings.Contains(off.Reason, "heartbeats missed") {
		t.Errorf("offline reason = %q, want the missed heartbeats", off.Reason)
	}
	if off.LastHeartbeat == nil {
		t.Error("last_heartbeat not reported")
	}

	// The in-flight session ends with a reason, not a hang.
	if err := s.wait(t); err == nil || !strings.Contains(s.out.String(), "connector_offline") {
		t.Errorf("in-flight session: exit %v, output %q; want it ended with connector_offline", err, s.out.String())
	}
	// Routing refuses the offline connector with a clear error.
	e.refused("echo", "connector_offline")

	e.conn.signal(syscall.SIGCONT)
	e.waitStatus("online")
	s2 := e.connect("echo")
	echo(t, s2, "after the thaw")
	s2.stdin.Close()
	if err := s2.wait(t); err != nil {
		t.Errorf("normal session end: %v\n%s", err, s2.out.String())
	}
}

// The control plane restarts on the same state and port: the connector
// comes back online by itself with the same ID and no re-enrolment.
func TestControlPlaneRestart(t *testing.T) {
	e := newEnv(t, nil, 0)
	before := e.waitStatus("online")
	e.serve.signal(syscall.SIGTERM)
	if err := e.serve.wait(t); err != nil {
		t.Fatalf("serve exit: %v", err)
	}
	eventually(t, "connector notices", func() bool {
		st := e.connectorStatus()
		return st != nil && st["state"] == "reconnecting"
	})
	e.startServe()
	after := e.waitStatus("online")
	if after.ID != before.ID {
		t.Errorf("connector ID after restart = %s, want %s", after.ID, before.ID)
	}
	eventually(t, "connector online", func() bool {
		st := e.connectorStatus()
		return st != nil && st["state"] == "online" && st["connector_id"] == before.ID
	})
	if n := len(connectors(t, e.state)); n != 1 {
		t.Errorf("%d connectors registered, want 1 (no re-enrolment)", n)
	}
	if n := strings.Count(e.conn.out.String(), "to=enrolling"); n != 1 {
		t.Errorf("connector went to enrolling %d times, want 1 (the first enrolment)", n)
	}
}

// SIGTERM during a session: new sessions are refused (draining), the open
// one keeps working until it ends, then the connector exits cleanly.
func TestSIGTERMDrains(t *testing.T) {
	target := echoServer(t)
	e := newEnv(t, nil, 0)
	c := e.waitStatus("online")
	e.addResource("echo", target, c.ID)
	s := e.connect("echo")
	echo(t, s, "one")

	e.conn.signal(syscall.SIGTERM)
	eventually(t, "connector draining", func() bool {
		st := e.connectorStatus()
		return st != nil && st["state"] == "draining"
	})
	e.refused("echo", "draining")
	echo(t, s, "two") // the open session still carries data while draining
	s.stdin.Close()
	// The session ends normally even though the connector closes the
	// tunnel the moment it ends: not cut, not connector_offline.
	if err := s.wait(t); err != nil {
		t.Errorf("session during drain ended with %v, want a normal end\n%s", err, s.out.String())
	}
	if err := e.conn.wait(t); err != nil {
		t.Errorf("connector exit after drain: %v", err)
	}
	// The lab logs every end: its own view and the connector's report.
	// Our half-close came first, so both say client_closed.
	var end string
	eventually(t, "the lab logs the session's end", func() bool {
		out := e.serve.out.String()
		if m := regexp.MustCompile(`by=control_plane reason=(\S+)`).FindStringSubmatch(out); m != nil {
			end = m[1]
		}
		return end != "" && strings.Contains(out, "by=connector reason=client_closed")
	})
	if end != "client_closed" {
		t.Errorf("the lab ended the drained session with reason %s, want client_closed", end)
	}
}

// A target outside allowed_targets is refused by the connector and the
// reason reaches the caller.
func TestAllowedTargets(t *testing.T) {
	allowed, other := echoServer(t), echoServer(t)
	e := newEnv(t, []string{allowed}, 0)
	c := e.waitStatus("online")
	e.addResource("ok", allowed, c.ID)
	e.addResource("blocked", other, c.ID)
	e.refused("blocked", "not_allowed")
	s := e.connect("ok")
	echo(t, s, "allowed")
}

// connect as nc (4 MiB both ways, bytes unchanged) and as a local port
// forward (--listen).
func TestConnectPipeAndForward(t *testing.T) {
	target := echoServer(t)
	e := newEnv(t, nil, 0)
	c := e.waitStatus("online")
	e.addResource("echo", target, c.ID)

	payload := make([]byte, 4<<20)
	rand.Read(payload)
	s := e.connect("echo")
	go func() {
		s.stdin.Write(payload)
		s.stdin.Close()
	}()
	got, err := io.ReadAll(s.stdout)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("4 MiB through connect: %d bytes back, equal=%v, err %v", len(got), bytes.Equal(got, payload), err)
	}
	if err := s.wait(t); err != nil {
		t.Errorf("connect exit: %v\n%s", err, s.out.String())
	}

	fw := start(t, nil, false, "vaultpam-lab", "connect", "--state", e.state, "--resource", "echo", "--listen", "127.0.0.1:0")
	var addr string
	eventually(t, "forward listening", func() bool {
		m := regexp.MustCompile(`forwarding (\S+) to resource`).FindStringSubmatch(fw.out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	for i := 0; i < 2; i++ { // two sessions through one forward
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("forwarded %d", i)
		conn.Write([]byte(msg))
		conn.(*net.TCPConn).CloseWrite()
		back, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || string(back) != msg {
			t.Errorf("through --listen: %q, %v; want %q", back, err, msg)
		}
	}
}

// The connector process restarts on the same data directory, with the
// token still in its environment (as with `docker run -e`): same ID, no
// second enrolment.
func TestConnectorRestartKeepsIdentity(t *testing.T) {
	e := newEnv(t, nil, 0)
	before := e.waitStatus("online")
	e.conn.signal(syscall.SIGTERM)
	if err := e.conn.wait(t); err != nil {
		t.Fatalf("connector exit: %v", err)
	}
	e.waitStatus("offline")
	e.conn = start(t, append(e.connEnv, "PAM_ENROLMENT_TOKEN="+e.token), false, "vaultpam-connector", "run")
	after := e.waitStatus("online")
	if after.ID != before.ID || len(connectors(t, e.state)) != 1 {
		t.Errorf("after restart: %+v, want the one connector %s", connectors(t, e.state), before.ID)
	}
	eventually(t, "status online", func() bool {
		st := e.connectorStatus()
		return st != nil && st["state"] == "online" && st["connector_id"] == before.ID
	})
	if strings.Contains(e.conn.out.String(), "to=enrolling") {
		t.Error("the restarted connector enrolled again")
	}
}
