package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

// One connector per data directory: a second `run` on the same data
// directory (two real processes) refuses to start, naming the first's
// PID, and leaves the first's socket alone; a second one on another data
// directory but the same socket does not take the socket over either.
func TestSecondInstanceRefused(t *testing.T) {
	cp := lab.NewTest(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\n"), 0o644)
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "c.sock")
	env := []string{"PAM_AGENT_CONFIG=" + cfg, "PAM_AGENT_DATA_DIR=" + data, "PAM_AGENT_SOCKET=" + sock}
	first := startConnector(t, env...)
	first.waitUntil(t, "the first connector's socket", func() bool {
		st, err := localapi.NewClient(sock).Status(context.Background())
		return err == nil && st.State == state.AwaitingToken.String()
	})
	sockInfo, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"same data directory", env, fmt.Sprintf("another vaultpam-connector (PID %d) is running with the data directory %s", first.cmd.Process.Pid, data)},
		{"same socket, another data directory", []string{"PAM_AGENT_CONFIG=" + cfg, "PAM_AGENT_DATA_DIR=" + filepath.Join(dir, "data2"), "PAM_AGENT_SOCKET=" + sock},
			"another process is listening on " + sock},
	} {
		second := startConnector(t, tc.env...)
		select {
		case <-second.exited:
		case <-time.After(60 * time.Second): // only a broken build gets here
			t.Fatalf("%s: the second connector is still running:\n%s", tc.name, second.out.String())
		}
		if code := second.cmd.ProcessState.ExitCode(); code != exitError || !strings.Contains(second.out.String(), tc.want) {
			t.Errorf("%s: second connector exit %d, output:\n%s\nwant exit %d saying %q", tc.name, code, second.out.String(), exitError, tc.want)
		}
		now, err := os.Stat(sock)
		if err != nil || !os.SameFile(now, sockInfo) {
			t.Errorf("%s: the first connector's socket was replaced or removed (%v)", tc.name, err)
		}
		if _, err := localapi.NewClient(sock).Status(context.Background()); err != nil {
			t.Errorf("%s: the first connector no longer answers on its socket: %v", tc.name, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(data, identity.LockFileName)); strings.TrimSpace(string(b)) != fmt.Sprint(first.cmd.Process.Pid) {
		t.Errorf("lock file holds %q, want the first connector's PID %d", b, first.cmd.Process.Pid)
	}
	// Once the first is gone (however it ends), the lock is free again.
	first.kill()
	third := startConnector(t, env...)
	third.waitUntil(t, "a new connector on the released data directory", func() bool {
		_, err := localapi.NewClient(sock).Status(context.Background())
		return err == nil
	})
}
