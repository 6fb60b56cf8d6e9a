package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/lab"
)

// secrets makes tokens (every spelling a person pastes) and random
// passwords (letters, digits and at least one symbol).
type secrets struct{ r *rand.Rand }

func (g *secrets) token() string {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(g.r.Uint32())
	}
	tok, _ := protocol.NewToken(rand.NewChaCha8(seed))
	switch g.r.IntN(4) {
	case 0:
		return tok
	case 1:
		return protocol.FormatToken(tok)
	case 2:
		return strings.ToLower(protocol.FormatToken(tok))
	}
	return strings.ToLower(tok)
}

func (g *secrets) password() string {
	const letters = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	const symbols = "!$%&*+,.;<=>?^_~(){}|"
	b := make([]byte, 12+g.r.IntN(13))
	for i := range b {
		b[i] = letters[g.r.IntN(len(letters))]
	}
	b[g.r.IntN(len(b))] = symbols[g.r.IntN(len(symbols))]
	return string(b)
}

// leak returns the part of secret found in out (the whole of it, any case,
// or 6 characters in a row).
func leak(out, secret string) (string, bool) {
	lo, ls := strings.ToLower(out), strings.ToLower(secret)
	if strings.Contains(lo, ls) {
		return secret, true
	}
	for i := 0; i+6 <= len(ls); i++ {
		if w := ls[i : i+6]; !strings.ContainsAny(w, "- ") && strings.Contains(lo, w) {
			return secret[i : i+6], true
		}
	}
	return "", false
}

// CLI misuse with a token-like (or password-like) argument, in every
// place one could paste it: the output never repeats it.
func TestCLIMisuseNeverRepeatsASecret(t *testing.T) {
	g := &secrets{rand.New(rand.NewPCG(5, 7))}
	dir := t.TempDir()
	for i := 0; i < 60; i++ {
		s := g.token()
		if i%3 == 2 {
			s = g.password()
		}
		cases := [][]string{
			{"run", s}, {s}, {"run", "--" + s}, {"run", "-" + s + "=x"}, {"status", "--json=" + s},
			{"run", "--config"}, {"status", s, "--" + s},
		}
		if i%3 != 2 { // paths: a token pasted where a file name goes
			cases = append(cases, []string{"run", "--config", s}, []string{"run", "--token-file", s},
				[]string{"status", "--socket", filepath.Join(dir, s)})
		}
		for _, args := range cases {
			var out syncBuf
			getenv, unset := mapEnv(map[string]string{"PAM_AGENT_DATA_DIR": filepath.Join(dir, "data"), "PAM_AGENT_SOCKET": filepath.Join(dir, "none.sock")})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			code := Main(ctx, Env{Stdout: &out, Stderr: &out, Args: args, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
			cancel()
			if code == exitOK && args[0] == "run" {
				t.Errorf("vaultpam-connector %q ran", args)
			}
			if part, ok := leak(out.String(), s); ok {
				t.Errorf("vaultpam-connector %q repeats %q of the secret:\n%s", args, part, out.String())
			}
		}
	}
}

// authProxy is an HTTP CONNECT proxy that refuses everyone (407), or with
// close, hangs up on them.
func authProxy(t *testing.T, close bool) string {
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
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil || close {
					return
				}
				io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n")
			}()
		}
	}()
	return ln.Addr().String()
}

// The daemon, enrolling through a proxy with credentials that refuses or
// hangs up, and presenting a token the control plane does not know: its
// log, its status reason and hint never hold the token, the proxy user or
// password.
func TestEnrolmentErrorsNeverRepeatASecret(t *testing.T) {
	cp := lab.NewTest(t)
	g := &secrets{rand.New(rand.NewPCG(11, 13))}
	for _, tc := range []struct {
		name  string
		proxy string // "" none; else the proxy's address
	}{
		{"proxy answers 407", authProxy(t, false)},
		{"proxy hangs up", authProxy(t, true)},
		{"unknown token", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, user, pw := g.token(), "u"+g.password(), g.password()
			if _, err := protocol.ParseToken(tok); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			cfg := filepath.Join(dir, "connector.yaml")
			os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\n"), 0o644)
			sock := filepath.Join(dir, "c.sock")
			envm := map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": filepath.Join(dir, "data"), "PAM_AGENT_SOCKET": sock, "PAM_ENROLMENT_TOKEN": tok}
			if tc.proxy != "" {
				envm["PAM_PROXY_URL"] = (&url.URL{Scheme: "http", User: url.UserPassword(user, pw), Host: tc.proxy}).String()
			}
			getenv, unset := mapEnv(envm)
			var out syncBuf
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int)
			go func() {
				done <- Main(ctx, Env{Stdout: &out, Stderr: &out, Args: []string{"run"}, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
			}()
			var st localapi.Status
			deadline := time.Now().Add(time.Minute)
			for st.Reason == "" || st.State == "enrolling" && !strings.Contains(st.Reason, "retrying") {
				select {
				case code := <-done:
					t.Fatalf("run exited %d:\n%s", code, out.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no failure reason in the status: %+v\n%s", st, out.String())
				}
				time.Sleep(20 * time.Millisecond)
				st, _ = localapi.NewClient(sock).Status(context.Background())
			}
			cancel()
			<-done
			js, _ := json.Marshal(st)
			all := out.String() + "\n" + string(js)
			t.Logf("status: %s %q (hint %q)", st.State, st.Reason, st.Hint)
			for _, s := range []string{tok, user, pw, url.UserPassword(user, pw).String()} {
				if part, ok := leak(all, s); ok {
					t.Errorf("%q of a secret appears in the output or the status:\n%s", part, all)
				}
			}
		})
	}
}
