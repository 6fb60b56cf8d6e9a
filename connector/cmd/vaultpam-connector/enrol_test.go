package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

func runEnrol(t *testing.T, sock, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb syncBuf
	c := Main(context.Background(), Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Args: append([]string{"enrol", "--socket", sock, "--poll", "20ms"}, args...)})
	return c, out.String(), errb.String()
}

// The native installer's flow in-process: the daemon waits for a token,
// `enrol` reads it from standard input (a script piping it), hands it over
// and follows the status until Online.
func TestEnrolPipedToken(t *testing.T) {
	cp := lab.NewTest(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	d := startDaemon(t, cp, nil)
	waitStatus(t, d.sock, "waiting for a token", func(s localapi.Status) bool { return s.State == state.AwaitingToken.String() })

	code, out, errb := runEnrol(t, d.sock, strings.ToLower(protocol.FormatToken(tok))+"\n")
	if code != exitOK {
		t.Fatalf("enrol exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	st, _ := localapi.NewClient(d.sock).Status(context.Background())
	for _, want := range []string{"Connector dc1: Waiting for token (Autonomous restart)", "Enrolling", "Online: connector " + st.ConnectorID + " (dc1) is connected to " + cp.URL()} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errb, tok) || strings.Contains(strings.ToUpper(out+errb), protocol.FormatToken(tok)) {
		t.Error("the token appears in enrol's output")
	}
}

// A typo is caught locally: nothing reaches the connector, which keeps
// waiting without a reason.
func TestEnrolTypoCaughtLocally(t *testing.T) {
	cp := lab.NewTest(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	d := startDaemon(t, cp, nil)
	waitStatus(t, d.sock, "waiting for a token", func(s localapi.Status) bool { return s.State == state.AwaitingToken.String() })
	bad := []byte(tok)
	bad[3] = map[bool]byte{true: 'A', false: 'B'}[bad[3] != 'A']
	code, out, errb := runEnrol(t, d.sock, string(bad)+"\n")
	if code != exitError || !strings.Contains(errb, "typo") || !strings.Contains(errb, "hint:") || !strings.Contains(errb, "nothing was sent") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	if st, _ := localapi.NewClient(d.sock).Status(context.Background()); st.State != state.AwaitingToken.String() || st.Reason != "" {
		t.Errorf("status after a local typo = %s %q; want awaiting_token, no reason", st.State, st.Reason)
	}
	if strings.Contains(out+errb, string(bad)) {
		t.Error("the typed token appears in the output")
	}
}

// A token the control plane refuses (unknown here): enrol reports the
// connector's reason and hint and exits 1.
func TestEnrolRefused(t *testing.T) {
	cp := lab.NewTest(t)
	d := startDaemon(t, cp, nil)
	waitStatus(t, d.sock, "waiting for a token", func(s localapi.Status) bool { return s.State == state.AwaitingToken.String() })
	unknown, _ := protocol.NewToken(nil)
	code, out, errb := runEnrol(t, d.sock, unknown+"\n")
	if code != exitError || !strings.Contains(errb, "enrolment did not succeed: Waiting for token") || !strings.Contains(errb, "hint:") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
}

func TestEnrolUsage(t *testing.T) {
	code, _, errb := runEnrol(t, "/nonexistent.sock", "", "ABCDE-FGHJK-MNPQR-STVWX")
	if code != exitUsage || !strings.Contains(errb, "never an argument") {
		t.Errorf("token as argument: exit %d\n%s", code, errb)
	}
	code, _, errb = runEnrol(t, "/nonexistent.sock", "")
	if code != exitError || !strings.Contains(errb, "not reachable") || !strings.Contains(errb, "hint: start the connector") {
		t.Errorf("no daemon: exit %d\n%s", code, errb)
	}
}

// A user outside the socket's group gets told so, not "start the
// connector".
func TestEnrolSocketPermission(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run enrol as another user")
	}
	cp := lab.NewTest(t)
	d := startDaemon(t, cp, nil)
	waitStatus(t, d.sock, "waiting for a token", func(s localapi.Status) bool { return s.State == state.AwaitingToken.String() })
	os.Chmod(filepath.Dir(d.dir), 0o755) // so the socket itself refuses, not the path to it
	os.Chmod(d.dir, 0o755)
	cmd := exec.Command(connectorBinary(t), "enrol", "--socket", d.sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "permission denied") || !strings.Contains(string(out), "hint: the socket is for root and the vaultpam group") {
		t.Errorf("enrol as nobody: %v\n%s", err, out)
	}
}

// The prompt on a real terminal: the real binary under a pty, the token
// typed at "Enrolment token (input hidden):" is not echoed back, and the
// connector ends Online.
func TestEnrolPromptOnTerminal(t *testing.T) {
	bin := connectorBinary(t)
	cp := lab.NewTest(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	d := startDaemon(t, cp, nil)
	waitStatus(t, d.sock, "waiting for a token", func(s localapi.Status) bool { return s.State == state.AwaitingToken.String() })

	cmd := exec.Command(bin, "enrol", "--socket", d.sock, "--poll", "20ms")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TERM=dumb"}
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Skipf("no pty here: %v", err)
	}
	defer tty.Close()
	screen := make(chan string, 1)
	var seen strings.Builder
	go func() {
		io.Copy(&lockedBuilder{b: &seen, ch: screen}, bufio.NewReader(tty))
	}()
	waitScreen(t, screen, &seen, regexp.MustCompile(`Enrolment token \(input hidden\): $`))
	io.WriteString(tty, protocol.FormatToken(tok)+"\r")
	waitScreen(t, screen, &seen, regexp.MustCompile(`Online: connector conn-\S+ \(dc1\)`))
	if err := cmd.Wait(); err != nil {
		t.Errorf("enrol: %v\n%s", err, seen.String())
	}
	if s := seen.String(); strings.Contains(s, tok) || strings.Contains(s, protocol.FormatToken(tok)) {
		t.Error("the token was echoed on the terminal")
	}
}

// lockedBuilder collects the pty's output and signals each change.
type lockedBuilder struct {
	b  *strings.Builder
	ch chan string
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.b.Write(p)
	select {
	case l.ch <- l.b.String():
	default:
	}
	return len(p), nil
}

func waitScreen(t *testing.T, ch chan string, all *strings.Builder, re *regexp.Regexp) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case s := <-ch:
			if re.MatchString(s) {
				return
			}
		case <-deadline:
			t.Fatalf("terminal never showed %q", re)
		}
	}
}

// status --check: the exec probes of the Kubernetes manifests.
func TestStatusCheck(t *testing.T) {
	cp := lab.NewTest(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	d := startDaemon(t, cp, nil)
	waitStatus(t, d.sock, "waiting for a token", func(s localapi.Status) bool { return s.State == state.AwaitingToken.String() })
	check := func(mode string) (int, string) {
		var out syncBuf
		c := Main(context.Background(), Env{Stdout: &out, Stderr: &out, Args: []string{"status", "--check", mode, "--socket", d.sock}})
		return c, out.String()
	}
	if c, out := check("live"); c != exitOK || out != "live: Waiting for token\n" {
		t.Errorf("live while waiting: %d %q", c, out)
	}
	if c, out := check("ready"); c != exitError || out != "not ready: Waiting for token\n" {
		t.Errorf("ready while waiting: %d %q", c, out)
	}
	if c, _, errb := runEnrol(t, d.sock, tok+"\n"); c != exitOK {
		t.Fatalf("enrol: %d\n%s", c, errb)
	}
	if c, out := check("ready"); c != exitOK || out != "ready: Online\n" {
		t.Errorf("ready when online: %d %q", c, out)
	}
	var out syncBuf
	if c := Main(context.Background(), Env{Stdout: &out, Stderr: &out, Args: []string{"status", "--check", "live", "--socket", d.sock + ".absent"}}); c != exitError || !strings.HasPrefix(out.String(), "not live: connector not reachable") {
		t.Errorf("live without a daemon: %d %q", c, out.String())
	}
	if c := Main(context.Background(), Env{Stdout: &out, Stderr: &out, Args: []string{"status", "--check", "started"}}); c != exitUsage {
		t.Errorf("--check started: exit %d", c)
	}
}
