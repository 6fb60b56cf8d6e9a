package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/protocol"
)

func runLab(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), Env{Stdout: &out, Stderr: &errb, Args: args})
	return out.String(), errb.String(), code
}

// serveLab runs `serve` in-process until the test ends; it returns the URL.
func serveLab(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan int)
	var errb bytes.Buffer
	go func() {
		done <- Main(ctx, Env{Stdout: &bytes.Buffer{}, Stderr: &errb, Args: append([]string{"serve", "--state", dir, "--listen", "127.0.0.1:0"}, extra...),
			Ready: func(u string) { ready <- u }})
	}()
	select {
	case u := <-ready:
		t.Cleanup(func() { cancel(); <-done })
		return u
	case c := <-done:
		t.Fatalf("serve exited %d: %s", c, errb.String())
	}
	return ""
}

func TestLabCommandsThroughServe(t *testing.T) {
	dir := t.TempDir()
	url := serveLab(t, dir)
	if b, _ := os.ReadFile(filepath.Join(dir, "url")); strings.TrimSpace(string(b)) != url {
		t.Errorf("DIR/url = %q, want %q", b, url)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "admin.sock")); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket mode wrong: %v", fi)
	}

	out, errs, code := runLab(t, "token", "create", "--state", dir, "--name", "dc1")
	tok := strings.TrimSpace(out)
	if code != 0 || len(tok) != 23 || strings.Count(tok, "-") != 3 {
		t.Fatalf("token create = %q (%d) %s", out, code, errs)
	}
	if _, err := protocol.ParseToken(tok); err != nil {
		t.Fatalf("printed token does not parse: %v", err)
	}

	// Enrol against the served lab with the printed token.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	id, err := (&enrol.Client{URL: url, RootCAs: pool, Name: "dc1"}).Enrol(context.Background(), tok)
	if err != nil {
		t.Fatalf("enrol with the printed token: %v", err)
	}

	out, _, code = runLab(t, "connectors", "--state", dir, "--json")
	var cs []map[string]any
	if err := json.Unmarshal([]byte(out), &cs); err != nil || code != 0 || len(cs) != 1 {
		t.Fatalf("connectors --json = %q: %v", out, err)
	}
	for _, k := range []string{"id", "name", "status", "last_heartbeat"} {
		if _, ok := cs[0][k]; !ok {
			t.Errorf("connectors --json lacks %q: %s", k, out)
		}
	}
	if cs[0]["id"] != id.ConnectorID || cs[0]["status"] != "pending" {
		t.Errorf("connector = %v, want %s pending", cs[0], id.ConnectorID)
	}

	out, _, code = runLab(t, "token", "recover", "--state", dir, "--connector", id.ConnectorID)
	if code != 0 {
		t.Fatalf("token recover failed")
	}
	id2, err := (&enrol.Client{URL: url, RootCAs: pool, Name: "dc1"}).Enrol(context.Background(), strings.TrimSpace(out))
	if err != nil || id2.ConnectorID != id.ConnectorID {
		t.Fatalf("recovery enrol = %v, %v; want %s", id2, err, id.ConnectorID)
	}
	if _, err := (&enrol.Client{URL: url, RootCAs: pool}).WhoAmI(context.Background(), id); !enrol.IsCode(err, protocol.CodeCertRevoked) {
		t.Errorf("old identity after recovery: WhoAmI = %v, want cert_revoked", err)
	}

	if _, errs, code := runLab(t, "resources", "add", "--state", dir, "--name", "db", "--address", "127.0.0.1:5432", "--connector", id.ConnectorID); code != 0 {
		t.Errorf("resources add: %d %s", code, errs)
	}
	if _, errs, code := runLab(t, "resources", "add", "--state", dir, "--name", "db", "--address", "nope", "--connector", "conn-x"); code == 0 || !strings.Contains(errs, "HOST:PORT") || !strings.Contains(errs, "conn-x") {
		t.Errorf("bad resource accepted or not explained: %d %s", code, errs)
	}
	if _, _, code := runLab(t, "revoke", "--state", dir, "--connector", id.ConnectorID); code != 0 {
		t.Error("revoke failed")
	}
	out, _, _ = runLab(t, "connectors", "--state", dir)
	if !strings.Contains(out, "revoked") {
		t.Errorf("connectors after revoke:\n%s", out)
	}
}

// Without a running serve, the commands use the state directory directly.
func TestLabCommandsWithoutServe(t *testing.T) {
	dir := t.TempDir()
	out, errs, code := runLab(t, "token", "create", "--state", dir, "--name", "dc1", "--ttl", "5m")
	tok := strings.TrimSpace(out)
	if code != 0 || len(tok) != 23 {
		t.Fatalf("token create = %q %d %s", out, code, errs)
	}
	st, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	if strings.Contains(string(st), tok) || strings.Contains(string(st), strings.ReplaceAll(tok, "-", "")) {
		t.Error("token stored in clear")
	}
	out, _, code = runLab(t, "connectors", "--state", dir, "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("connectors = %q", out)
	}
}

func TestLabUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"token", "create", "--state", t.TempDir()}, {"token", "recover", "--state", t.TempDir()}, {"serve"}, {"connectors"}} {
		if _, errs, code := runLab(t, args...); code != 2 || !strings.Contains(errs, "usage") {
			t.Errorf("%q: exit %d\n%s", args, code, errs)
		}
	}
}
