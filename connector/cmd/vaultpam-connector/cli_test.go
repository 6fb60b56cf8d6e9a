package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

// syncBuf is a bytes.Buffer safe for the daemon's log goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func mapEnv(m map[string]string) (func(string) string, func(string) error) {
	var mu sync.Mutex
	return func(k string) string { mu.Lock(); defer mu.Unlock(); return m[k] },
		func(k string) error { mu.Lock(); defer mu.Unlock(); delete(m, k); return nil }
}

func TestMalformedConfigListsEveryProblemAndWritesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: http://x\nconnector_name: \"a b\"\nallowed_targets: [\"::bad::\"]\nbogus: 1\n"), 0o644)
	data := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "c.sock")
	getenv, unset := mapEnv(map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": data, "PAM_AGENT_SOCKET": sock})
	var stdout, stderr syncBuf
	code := Main(context.Background(), Env{Stdout: &stdout, Stderr: &stderr, Args: []string{"run"}, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
	if code != exitConfig {
		t.Fatalf("exit = %d, want %d\n%s", code, exitConfig, stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{"error:", "problems", "control_plane_url", "connector_name", "allowed_targets[0]", "bogus", "hint:"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	for _, p := range []string{data, sock} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created for a malformed config", p)
		}
	}
}

func TestConfigWithPrivateKeyRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: https://cp\nconnector_name: a\nprivate_key: |\n  -----BEGIN EC PRIVATE KEY-----\n  SECRETBYTES\n  -----END EC PRIVATE KEY-----\n"), 0o644)
	getenv, unset := mapEnv(map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": filepath.Join(dir, "d")})
	var stderr syncBuf
	code := Main(context.Background(), Env{Stdout: &stderr, Stderr: &stderr, Args: []string{"run"}, Getenv: getenv, Unsetenv: unset})
	if code != exitConfig || !strings.Contains(stderr.String(), "private_key") || strings.Contains(stderr.String(), "SECRETBYTES") {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out, errb syncBuf
	if c := Main(context.Background(), Env{Stdout: &out, Stderr: &errb, Args: []string{"version"}}); c != 0 || !strings.HasPrefix(out.String(), "vaultpam-connector ") {
		t.Errorf("version: %d %q", c, out.String())
	}
	if c := Main(context.Background(), Env{Stdout: &out, Stderr: &errb, Args: []string{"frobnicate"}}); c != exitUsage {
		t.Errorf("unknown command exit %d", c)
	}
	if c := Main(context.Background(), Env{Stdout: &out, Stderr: &errb, Args: []string{"run", "ABCDE-FGHJK"}}); c != exitUsage || !strings.Contains(errb.String(), "never passed as arguments") {
		t.Errorf("token as argument: exit %d\n%s", c, errb.String())
	}
}

func TestStatusWithoutDaemon(t *testing.T) {
	var out, errb syncBuf
	c := Main(context.Background(), Env{Stdout: &out, Stderr: &errb, Args: []string{"status", "--socket", filepath.Join(t.TempDir(), "none.sock")}})
	if c != exitError || !strings.Contains(errb.String(), "hint:") {
		t.Errorf("exit %d:\n%s", c, errb.String())
	}
}

// The daemon in-process: token from the environment (removed and never
// logged), identity on disk, status over the socket in both forms.
func TestRunEnrolsAndServesStatus(t *testing.T) {
	cp := lab.NewTest(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\n"), 0o644)
	sock := filepath.Join(dir, "run", "c.sock")
	envm := map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": filepath.Join(dir, "data"), "PAM_AGENT_SOCKET": sock, "PAM_ENROLMENT_TOKEN": protocol.FormatToken(tok)}
	getenv, unset := mapEnv(envm)
	var notes []string
	var mu sync.Mutex
	var stdout, stderr syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Main(ctx, Env{Stdout: &stdout, Stderr: &stderr, Args: []string{"run"}, Getenv: getenv, Unsetenv: unset,
			Notify: func(s string) { mu.Lock(); notes = append(notes, s); mu.Unlock() }})
	}()
	var st localapi.Status
	deadline := time.Now().Add(time.Minute)
	for {
		var out, errb syncBuf
		if Main(context.Background(), Env{Stdout: &out, Stderr: &errb, Args: []string{"status", "--json", "--socket", sock}}) == 0 {
			st = localapi.Status{}
			json.Unmarshal([]byte(out.String()), &st)
			if st.State == state.Online.String() && !st.LastHeartbeat.IsZero() {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never enrolled; last status %+v\n%s", st, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if getenv("PAM_ENROLMENT_TOKEN") != "" {
		t.Error("PAM_ENROLMENT_TOKEN still set after run read it")
	}
	var human, errb syncBuf
	Main(context.Background(), Env{Stdout: &human, Stderr: &errb, Args: []string{"status", "--socket", sock}})
	if st.ConnectorID == "" || st.Reason != "" || st.CertNotAfter.IsZero() || st.HeartbeatInterval == 0 {
		t.Errorf("online status = %+v", st)
	}
	for _, want := range []string{"State:", "Online", st.ConnectorID, "Autonomous restart", "Last heartbeat:", "Targets:", "any private or public address; refused: loopback"} {
		if !strings.Contains(human.String(), want) {
			t.Errorf("human status lacks %q:\n%s", want, human.String())
		}
	}
	cancel()
	if c := <-done; c != 0 {
		t.Errorf("run exit %d\n%s", c, stderr.String())
	}
	for _, secret := range []string{tok, protocol.FormatToken(tok)} {
		if strings.Contains(stderr.String(), secret) || strings.Contains(stdout.String(), secret) {
			t.Error("the token appears in the daemon's output")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) == 0 || notes[0] != "READY=1" || !strings.Contains(strings.Join(notes, "\n"), "STATUS=Online") || notes[len(notes)-1] != "STOPPING=1" && !strings.HasPrefix(notes[len(notes)-1], "STATUS=Draining") {
		t.Errorf("sd_notify lines = %q", notes)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "identity.json")); err != nil {
		t.Errorf("identity not on disk: %v", err)
	}
}

// A token file with a typo: the connector refuses it locally (before any
// network traffic), keeps waiting and says why.
func TestTokenFileWithTypo(t *testing.T) {
	cp := lab.NewTest(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	bad := []byte(protocol.FormatToken(tok))
	bad[0] = map[bool]byte{true: 'A', false: 'B'}[bad[0] != 'A']
	dir := t.TempDir()
	tf := filepath.Join(dir, "token")
	os.WriteFile(tf, append(bad, '\n'), 0o600)
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\n"), 0o644)
	sock := filepath.Join(dir, "c.sock")
	getenv, unset := mapEnv(map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": filepath.Join(dir, "data"), "PAM_AGENT_SOCKET": sock})
	var stderr syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Main(ctx, Env{Stdout: &stderr, Stderr: &stderr, Args: []string{"run", "--token-file", tf}, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
	}()
	var st localapi.Status
	deadline := time.Now().Add(time.Minute)
	for st.Reason == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no reason in status: %+v\n%s", st, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
		st, _ = localapi.NewClient(sock).Status(context.Background())
	}
	cancel()
	<-done
	if st.State != state.AwaitingToken.String() || !strings.Contains(st.Reason, "given at start refused") || !strings.Contains(st.Reason, "typo") || st.Hint == "" {
		t.Errorf("status = %s %q %q; want awaiting_token with the typo and a hint", st.State, st.Reason, st.Hint)
	}
	if strings.Contains(stderr.String(), string(bad)) {
		t.Error("the token appears in the output")
	}
}

// Container shape: no config file, PAM_* variables only.
func TestEnvironmentOnlyConfig(t *testing.T) {
	if _, err := os.Stat(defaultConfigPath); err == nil {
		t.Skipf("%s exists on this machine; the environment-only fallback needs it absent", defaultConfigPath)
	}
	cp := lab.NewTest(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "c.sock")
	getenv, unset := mapEnv(map[string]string{"PAM_CONTROL_PLANE_URL": cp.URL(), "PAM_CONTROL_PLANE_CA_FILE": cp.CAFile,
		"PAM_CONNECTOR_NAME": "k8s-1", "PAM_AGENT_DATA_DIR": filepath.Join(dir, "data"), "PAM_AGENT_SOCKET": sock})
	var stderr syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Main(ctx, Env{Stdout: &stderr, Stderr: &stderr, Args: []string{"run"}, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
	}()
	var st localapi.Status
	deadline := time.Now().Add(time.Minute)
	for st.State == "" {
		select {
		case c := <-done:
			t.Fatalf("run exited %d:\n%s", c, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
		st, _ = localapi.NewClient(sock).Status(context.Background())
	}
	cancel()
	<-done
	if st.State != state.AwaitingToken.String() || st.ConnectorName != "k8s-1" || st.ControlPlane != cp.URL() {
		t.Errorf("status = %+v", st)
	}
}

// An allowed_targets entry the tunnel would refuse stops the connector at
// load (exit 3), before the token is presented: a token is never burnt on
// a connector that could not have brokered a session.
func TestBadAllowListRefusedBeforeTheTokenIsUsed(t *testing.T) {
	cp := lab.NewTest(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\nallowed_targets: [\"db.internal\"]\n"), 0o644)
	getenv, unset := mapEnv(map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": filepath.Join(dir, "data"),
		"PAM_AGENT_SOCKET": filepath.Join(dir, "c.sock"), "PAM_ENROLMENT_TOKEN": tok})
	var stderr syncBuf
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a connector that starts runs until then
	defer cancel()
	code := Main(ctx, Env{Stdout: &stderr, Stderr: &stderr, Args: []string{"run"}, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
	if code != exitConfig || !strings.Contains(stderr.String(), "allowed_targets[0]: a host name needs a port") {
		t.Fatalf("exit %d, want %d with the allowed_targets problem:\n%s", code, exitConfig, stderr.String())
	}
	if n := cp.Authority.EnrolAttempts(tok); n != 0 {
		t.Errorf("the token was presented %d times", n)
	}
}
