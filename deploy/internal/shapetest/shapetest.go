// Package shapetest is what the deployment-shape tests share: the static
// connector and the lab control plane built from this repository, and the
// lab run as a process on loopback (the interface an operator uses:
// `vaultpam-lab serve`, `token create|recover`, `connectors --json`).
package shapetest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Packages of the runtime module the tests build.
const (
	ConnectorPkg = "github.com/vaultpam/appliance/connector/cmd/vaultpam-connector"
	LabPkg       = "github.com/vaultpam/appliance/lab/cmd/vaultpam-lab"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
	dir   string
)

// Binary builds pkg once per test process (static, -trimpath, version
// ldflag, as `make packages` does) and returns its path. $VAULTPAM_BIN/NAME
// is not used: the packaged connector must be the static one.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "vaultpam-shapes-bin-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=0.0.0-test", "-o", out, pkg)
	cmd.Dir = RepoRoot(t) // the runtime module, with or without go.work
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

// RepoRoot returns the repository's root: the nearest directory above the
// working directory whose go.mod is the runtime module's.
func RepoRoot(t testing.TB) string {
	t.Helper()
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/vaultpam/appliance\n") {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			t.Fatal("not inside the vaultpam appliance repository (no go.mod of github.com/vaultpam/appliance above the working directory)")
		}
		d = parent
	}
}

// Cleanup removes the binaries; call it from TestMain after m.Run.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// Lab is a running `vaultpam-lab serve` on 127.0.0.1.
type Lab struct {
	Bin, State, URL, CAFile string
	cmd                     *exec.Cmd
	out                     *bytes.Buffer
}

// StartLab runs the lab control plane with a heartbeat of hb on a free
// loopback port; it is stopped when the test ends.
func StartLab(t testing.TB, hb time.Duration) *Lab {
	t.Helper()
	l := &Lab{Bin: Binary(t, LabPkg), State: t.TempDir(), out: &bytes.Buffer{}}
	l.CAFile = filepath.Join(l.State, "ca.pem")
	l.cmd = exec.Command(l.Bin, "serve", "--state", l.State, "--listen", "127.0.0.1:0", "--heartbeat-interval", hb.String())
	l.cmd.Stdout, l.cmd.Stderr = l.out, l.out
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.cmd.Process.Kill()
		l.cmd.Wait()
	})
	deadline := time.Now().Add(time.Minute)
	for {
		if b, err := os.ReadFile(filepath.Join(l.State, "url")); err == nil && len(b) > 0 {
			l.URL = strings.TrimSpace(string(b))
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaultpam-lab serve never wrote its URL")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Port is the lab's TCP port.
func (l *Lab) Port() string { return l.URL[strings.LastIndex(l.URL, ":")+1:] }

func (l *Lab) run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(l.Bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("vaultpam-lab %s: %v\n%s", args[0], err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// Token creates an enrolment token for a connector called name.
func (l *Lab) Token(t testing.TB, name string) string {
	return l.run(t, "token", "create", "--state", l.State, "--name", name)
}

// RecoveryToken creates a recovery token that re-binds connector id.
func (l *Lab) RecoveryToken(t testing.TB, id string) string {
	return l.run(t, "token", "recover", "--state", l.State, "--connector", id)
}

// Connector is one entry of `vaultpam-lab connectors --json`.
type Connector struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// Connectors lists the lab's connectors.
func (l *Lab) Connectors(t testing.TB) []Connector {
	t.Helper()
	var cs []Connector
	if err := json.Unmarshal([]byte(l.run(t, "connectors", "--state", l.State, "--json")), &cs); err != nil {
		t.Fatalf("connectors --json: %v", err)
	}
	return cs
}

// Eventually polls f every 200 ms until it returns true, failing the test
// with what after limit. Nothing is timed: limit only bounds a hang.
func Eventually(t testing.TB, limit time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for {
		ok, s := f()
		if ok {
			return
		}
		if s != "" {
			last = s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last: %s", what, limit, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
