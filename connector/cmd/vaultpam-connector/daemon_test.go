package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/lab"
)

// testDaemon is a `vaultpam-connector run` started in-process by a test.
type testDaemon struct {
	sock, dir string
	stderr    *syncBuf
	done      chan int
	cancel    context.CancelFunc
}

// startDaemon runs the daemon in-process against cp with a config file in
// a fresh directory; extra adds or overrides environment variables.
func startDaemon(t *testing.T, cp *lab.TestServer, extra map[string]string, args ...string) *testDaemon {
	t.Helper()
	return startDaemonWith(t, cp, "", extra, args...)
}

// startDaemonWith is startDaemon with more lines for the config file.
func startDaemonWith(t *testing.T, cp *lab.TestServer, yaml string, extra map[string]string, args ...string) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\n"+yaml), 0o644)
	d := &testDaemon{sock: filepath.Join(dir, "c.sock"), dir: dir, stderr: &syncBuf{}, done: make(chan int, 1)}
	envm := map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": filepath.Join(dir, "data"), "PAM_AGENT_SOCKET": d.sock}
	for k, v := range extra {
		envm[k] = v
	}
	getenv, unset := mapEnv(envm)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		d.done <- Main(ctx, Env{Stdout: d.stderr, Stderr: d.stderr, Args: append([]string{"run"}, args...), Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
	}()
	t.Cleanup(func() {
		cancel()
		<-d.done
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.stderr.String())
		}
	})
	return d
}

// waitStatus polls the socket until ok accepts the status; it fails the
// test after a minute.
func waitStatus(t *testing.T, sock string, what string, ok func(localapi.Status) bool) localapi.Status {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var st localapi.Status
	for {
		var err error
		st, err = localapi.NewClient(sock).Status(context.Background())
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: last status %+v (%v)", what, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// connectorBinary builds the real vaultpam-connector once per test run
// (tests that need a process of their own: /proc, a pty, re-exec).
func connectorBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vaultpam-connector-bin-")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(dir, 0o755) // other users run it too (TestEnrolSocketPermission)
		builtBin = filepath.Join(dir, "vaultpam-connector")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			builtBin = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building vaultpam-connector: %v\n%s", buildErr, builtBin)
	}
	return builtBin
}
