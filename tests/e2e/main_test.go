// Package e2e runs the real vaultpam-connector and vaultpam-lab binaries
// as processes on loopback: heartbeats stopping (SIGSTOP), routing
// refusing an offline connector, in-flight sessions ending with a reason,
// control plane restarts, SIGTERM draining, allowed_targets refusals.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binDir string

// TestMain builds both binaries once into a temp directory.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vaultpam-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	for _, pkg := range []string{"connector/cmd/vaultpam-connector", "lab/cmd/vaultpam-lab"} {
		cmd := exec.Command("go", "build", "-o", dir, "github.com/vaultpam/appliance/"+pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a started binary with its output captured.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuf
	stdin  io.WriteCloser
	stdout io.ReadCloser
	exited chan struct{}
	err    error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// start runs bin with args and env; with pipes, stdin and stdout are
// pipes (for connect), else stdout goes to the captured output too.
func start(t *testing.T, env []string, pipes bool, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p := &proc{cmd: cmd, out: &syncBuf{}, exited: make(chan struct{})}
	cmd.Stderr = p.out
	// With pipes, the child gets the far ends of os.Pipes: unlike
	// StdoutPipe, cmd.Wait (run as soon as the child exits) does not close
	// the end the test reads, so output written before exit is never lost
	// to "file already closed".
	var childEnds []*os.File
	if pipes {
		inR, inW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin, cmd.Stdout = inR, outW
		p.stdin, p.stdout = inW, outR
		childEnds = []*os.File{inR, outW}
		t.Cleanup(func() { inW.Close(); outR.Close() })
	} else {
		cmd.Stdout = p.out
	}
	err := cmd.Start()
	for _, f := range childEnds {
		f.Close() // the child has its copies; ours would hold EOF back
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGCONT)
		p.signal(syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			t.Logf("%s %s output:\n%s", bin, strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

func (p *proc) signal(s syscall.Signal) {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Signal(s)
	}
}

func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(time.Minute):
		t.Fatalf("%s did not exit", p.cmd.Path)
	}
	return nil
}

// lab runs one short vaultpam-lab command and returns its stdout.
func lab(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "vaultpam-lab"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("vaultpam-lab %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// eventually polls f until it returns true; it fails after a minute.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type connectorView struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Status        string     `json:"status"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
	Reason        string     `json:"reason"`
}

func connectors(t *testing.T, state string) []connectorView {
	t.Helper()
	out, err := lab(t, "connectors", "--state", state, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var cs []connectorView
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("connectors --json: %v\n%s", err, out)
	}
	return cs
}

// env is one lab and one connector, both real processes.
type env struct {
	t         *testing.T
	state     string
	listen    string
	serve     *proc
	conn      *proc
	connEnv   []string
	socket    string
	token     string
	heartbeat time.Duration
}

// newEnv starts a lab (heartbeat every hb; 0 means 1 s, slow enough that
// a loaded CI machine does not miss 3 in a row) and an enrolled connector.
func newEnv(t *testing.T, allowed []string, hb time.Duration) *env {
	t.Helper()
	dir := t.TempDir()
	if hb == 0 {
		hb = time.Second
	}
	e := &env{t: t, state: filepath.Join(dir, "lab"), heartbeat: hb, listen: "127.0.0.1:0"}
	e.startServe()
	url, _ := os.ReadFile(filepath.Join(e.state, "url"))
	e.listen = strings.TrimPrefix(strings.TrimSpace(string(url)), "https://")
	tok, err := lab(t, "token", "create", "--state", e.state, "--name", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("control_plane_url: https://%s\ncontrol_plane_ca_file: %s\nconnector_name: e2e\ndrain_timeout: 30s\n", e.listen, filepath.Join(e.state, "ca.pem"))
	if len(allowed) == 0 {
		// The echo targets are on loopback, which the connector refuses
		// unless allowed_targets names it (the default deny set).
		allowed = []string{"127.0.0.1"}
	}
	cfg += "allowed_targets: [\"" + strings.Join(allowed, "\", \"") + "\"]\n"
	cfgPath := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	e.socket = filepath.Join(dir, "connector.sock")
	e.connEnv = []string{"PAM_AGENT_CONFIG=" + cfgPath, "PAM_AGENT_DATA_DIR=" + filepath.Join(dir, "data"), "PAM_AGENT_SOCKET=" + e.socket}
	e.token = strings.TrimSpace(tok)
	e.conn = start(t, append(e.connEnv, "PAM_ENROLMENT_TOKEN="+e.token), false, "vaultpam-connector", "run")
	e.waitStatus("online")
	return e
}

func (e *env) startServe() {
	e.serve = start(e.t, nil, false, "vaultpam-lab", "serve", "--state", e.state, "--listen", e.listen, "--heartbeat-interval", e.heartbeat.String())
	eventually(e.t, "lab serving", func() bool {
		_, err := os.Stat(filepath.Join(e.state, "url"))
		return err == nil && strings.Contains(e.serve.out.String(), "lab control plane serving")
	})
}

// waitStatus waits until the lab lists the one connector with status.
func (e *env) waitStatus(status string) connectorView {
	var got connectorView
	eventually(e.t, "connector "+status, func() bool {
		cs := connectors(e.t, e.state)
		if len(cs) == 1 {
			got = cs[0]
		}
		return len(cs) == 1 && cs[0].Status == status
	})
	return got
}

func (e *env) connect(resource string) *proc {
	return start(e.t, nil, true, "vaultpam-lab", "connect", "--state", e.state, "--resource", resource)
}

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func echo(t *testing.T, p *proc, msg string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, msg); err != nil {
		t.Fatalf("writing to connect: %v", err)
	}
	buf := make([]byte, len(msg))
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(p.stdout, buf); done <- err }()
	select {
	case err := <-done:
		if err != nil || string(buf) != msg {
			t.Fatalf("echo through connect = %q, %v; want %q\n%s", buf, err, msg, p.out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("no echo through connect\n%s", p.out.String())
	}
}
