package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

// The test binary doubles as the connector: with helperEnv set, TestMain
// runs Main as the process's program (helperMain), so crash tests kill a
// real connector process.
const (
	helperEnv  = "VAULTPAM_TEST_CONNECTOR"
	pauseAtEnv = "VAULTPAM_TEST_PAUSE_AT" // stop (and wait to be killed) at this enrolment step
)

// helperMain is the connector process: `vaultpam-connector run` with the
// real environment; at the step pauseAtEnv names it says so on stderr and
// waits to be killed.
func helperMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	at := os.Getenv(pauseAtEnv)
	step := func(name string) {
		if name == at {
			fmt.Fprintf(os.Stderr, "PAUSED AT %s\n", name)
			select {} // until SIGKILL
		}
	}
	return Main(ctx, Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Args: os.Args[1:], Getenv: os.Getenv, Unsetenv: os.Unsetenv, Step: step})
}

// connectorProc is a connector process started from the test binary.
type connectorProc struct {
	cmd    *exec.Cmd
	out    *syncBuf
	exited chan struct{}
}

func startConnector(t *testing.T, env ...string) *connectorProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "run")
	cmd.Env = append([]string{helperEnv + "=1", "PATH=" + os.Getenv("PATH")}, env...)
	p := &connectorProc{cmd: cmd, out: &syncBuf{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("connector (pid %d) output:\n%s", cmd.Process.Pid, p.out.String())
		}
	})
	return p
}

func (p *connectorProc) kill() {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// waitUntil polls cond until it holds; the process exiting first fails.
func (p *connectorProc) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		select {
		case <-p.exited:
			t.Fatalf("connector exited while waiting for %s", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEnrolmentSurvivesSIGKILL kills the real connector process with
// SIGKILL at each point of an enrolment and starts it again with the same
// environment (the token still in it, as systemd would): every time it
// comes back Online with the one connector the token made, and the token
// is never burnt without its identity reaching the connector.
func TestEnrolmentSurvivesSIGKILL(t *testing.T) {
	for _, step := range []string{"before-start", "after-start", "pending-saved", "finish-sent", "answered", "before-save", "saved", "done"} {
		t.Run(step, func(t *testing.T) {
			cp := lab.NewTest(t)
			tok, _ := cp.Authority.CreateToken("dc1", 0)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "connector.yaml")
			os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\n"), 0o644)
			sock := filepath.Join(dir, "c.sock")
			env := []string{"PAM_AGENT_CONFIG=" + cfg, "PAM_AGENT_DATA_DIR=" + filepath.Join(dir, "data"), "PAM_AGENT_SOCKET=" + sock, "PAM_ENROLMENT_TOKEN=" + tok}
			status := func() localapi.Status {
				st, _ := localapi.NewClient(sock).Status(context.Background())
				return st
			}

			first := startConnector(t, append(env, pauseAtEnv+"="+step)...)
			first.waitUntil(t, "the connector to reach "+step, func() bool {
				if status().State == state.Online.String() {
					t.Fatalf("the connector went online without passing %s", step)
				}
				return strings.Contains(first.out.String(), "PAUSED AT "+step)
			})
			first.kill()

			second := startConnector(t, env...)
			var st localapi.Status
			second.waitUntil(t, "online after the restart", func() bool {
				st = status()
				return st.State == state.Online.String()
			})
			cs := cp.Authority.Connectors()
			if len(cs) != 1 || cs[0].ID != st.ConnectorID || cs[0].Status != lab.StatusOnline {
				t.Errorf("lab connectors %+v; want exactly the one online connector %s", cs, st.ConnectorID)
			}
			t.Logf("killed at %s: back online as %s, token presented %d times", step, st.ConnectorID, cp.Authority.EnrolAttempts(tok))
		})
	}
}
