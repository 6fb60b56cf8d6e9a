package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

// PAM_ENROLMENT_TOKEN_FILE (a mounted Kubernetes Secret): read once, the
// connector enrols, the file is left as it was.
func TestTokenFileFromEnvironment(t *testing.T) {
	cp := lab.NewTest(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	tf := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tf, []byte(protocol.FormatToken(tok)+"\n"), 0o400)
	d := startDaemon(t, cp, map[string]string{"PAM_ENROLMENT_TOKEN_FILE": tf})
	st := waitStatus(t, d.sock, "online", func(s localapi.Status) bool { return s.State == state.Online.String() })
	if st.ConnectorID == "" {
		t.Errorf("online without a connector ID: %+v", st)
	}
	if b, _ := os.ReadFile(tf); string(b) != protocol.FormatToken(tok)+"\n" {
		t.Errorf("token file changed to %q", b)
	}
	if strings.Contains(d.stderr.String(), tok) || strings.Contains(d.stderr.String(), protocol.FormatToken(tok)) {
		t.Error("the token appears in the daemon's output")
	}
}

// --token-file names a file that must be there; PAM_ENROLMENT_TOKEN_FILE
// an optional Secret that may be gone (deleted after enrolment): the
// connector then starts and waits for a token.
func TestTokenFileMissing(t *testing.T) {
	cp := lab.NewTest(t)
	absent := filepath.Join(t.TempDir(), "absent")
	var out syncBuf
	getenv, unset := mapEnv(map[string]string{"PAM_CONTROL_PLANE_URL": cp.URL()})
	c := Main(context.Background(), Env{Stdout: &out, Stderr: &out, Args: []string{"run", "--config", "", "--token-file", absent}, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
	if c != exitUsage || !strings.Contains(out.String(), "reading token file") || !strings.Contains(out.String(), "absent") {
		t.Errorf("--token-file absent: exit %d:\n%s", c, out.String())
	}
	d := startDaemon(t, cp, map[string]string{"PAM_ENROLMENT_TOKEN_FILE": absent})
	waitStatus(t, d.sock, "waiting for a token", func(s localapi.Status) bool { return s.State == state.AwaitingToken.String() })
}

// The hand-over pipe of the re-exec, in-process: the token is read from
// the inherited descriptor and the variable naming it is removed.
func TestStartTokenFromPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("ABCDE-FGHJK-MNPQR-STVW0\n")
	w.Close()
	fd, err := dupHigh(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	envm := map[string]string{envTokenFD: strconv.Itoa(fd)}
	getenv, unset := mapEnv(envm)
	tok, err := startToken(Env{Getenv: getenv, Unsetenv: unset}, "", false)
	if err != nil || tok != "ABCDE-FGHJK-MNPQR-STVW0" {
		t.Fatalf("startToken = %q, %v", tok, err)
	}
	if _, ok := envm[envTokenFD]; ok {
		t.Errorf("%s still set", envTokenFD)
	}
	if _, err := os.Stat("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
		t.Errorf("descriptor %d still open after reading the token", fd)
	}
	getenv, unset = mapEnv(map[string]string{envTokenFD: "1"})
	if _, err := startToken(Env{Getenv: getenv, Unsetenv: unset}, "", false); err == nil || !strings.Contains(err.Error(), "not an inherited file descriptor") {
		t.Errorf("fd 1 accepted: %v", err)
	}
}

// The real process: a token in PAM_ENROLMENT_TOKEN must be gone from
// /proc/PID/environ (what other processes of the same user, and root, can
// read for as long as the daemon runs), not only from os.Environ.
func TestTokenGoneFromProcEnviron(t *testing.T) {
	bin := connectorBinary(t)
	cp := lab.NewTest(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\n"), 0o644)
	sock := filepath.Join(dir, "c.sock")
	cmd := exec.Command(bin, "run")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PAM_AGENT_CONFIG=" + cfg, "PAM_AGENT_DATA_DIR=" + filepath.Join(dir, "data"),
		"PAM_AGENT_SOCKET=" + sock, "PAM_ENROLMENT_TOKEN=" + protocol.FormatToken(tok)}
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("connector output:\n%s", out.String())
		}
	})
	st := waitStatus(t, sock, "online", func(s localapi.Status) bool { return s.State == state.Online.String() })
	pid := strconv.Itoa(cmd.Process.Pid)
	environ, err := os.ReadFile("/proc/" + pid + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	vars := strings.Split(strings.TrimRight(string(environ), "\x00"), "\x00")
	if len(vars) < 3 {
		t.Fatalf("/proc/%s/environ has %d variables: not the daemon's environment", pid, len(vars))
	}
	// Failures name the variables, never their values (the token).
	var names []string
	for _, kv := range vars {
		k, _, _ := strings.Cut(kv, "=")
		names = append(names, k)
	}
	if bytes.Contains(environ, []byte(tok)) || bytes.Contains(environ, []byte(protocol.FormatToken(tok))) {
		t.Errorf("/proc/%s/environ holds the token (variables: %q)", pid, names)
	}
	if bytes.Contains(environ, []byte("PAM_ENROLMENT_TOKEN=")) {
		t.Errorf("/proc/%s/environ still has PAM_ENROLMENT_TOKEN (variables: %q)", pid, names)
	}
	cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
	if bytes.Contains(cmdline, []byte(tok)) || bytes.Contains(cmdline, []byte(protocol.FormatToken(tok))) {
		t.Errorf("/proc/%s/cmdline holds the token", pid)
	}
	if !bytes.Contains(environ, []byte("PAM_AGENT_SOCKET="+sock)) {
		t.Errorf("the re-executed daemon lost the rest of its environment: %q", names)
	}
	if strings.Contains(out.String(), tok) || strings.Contains(out.String(), protocol.FormatToken(tok)) {
		t.Error("the token appears in the daemon's output")
	}
	t.Logf("online as %s; /proc/%s/environ holds %d variables, none of them the token", st.ConnectorID, pid, len(vars))
}

// dupHigh duplicates f's descriptor to a number the test owns.
func dupHigh(f *os.File) (int, error) {
	return unixDup(int(f.Fd()))
}
