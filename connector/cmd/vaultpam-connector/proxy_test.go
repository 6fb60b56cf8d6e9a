package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

// connectProxy is a minimal HTTP CONNECT proxy on loopback that counts
// the tunnels it opened and those still open.
func connectProxy(t *testing.T) (addr string, tunnels, open *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tunnels, open = new(atomic.Int32), new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
					return
				}
				up, err := net.Dial("tcp", req.Host)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				tunnels.Add(1)
				open.Add(1)
				defer open.Add(-1)
				io.WriteString(c, "HTTP/1.1 200 Connection Established\r\n\r\n")
				go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), tunnels, open
}

// proxy_url is used for enrolment and for the tunnel alike.
func TestProxyForEnrolmentAndTunnel(t *testing.T) {
	cp := lab.NewTest(t)
	proxy, tunnels, open := connectProxy(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\nproxy_url: http://"+proxy+"\n"), 0o644)
	sock := filepath.Join(dir, "c.sock")
	getenv, unset := mapEnv(map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": filepath.Join(dir, "data"), "PAM_AGENT_SOCKET": sock, "PAM_ENROLMENT_TOKEN": tok})
	var stderr syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Main(ctx, Env{Stdout: &stderr, Stderr: &stderr, Args: []string{"run"}, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := localapi.NewClient(sock).Status(context.Background())
		if err == nil && st.State == state.Online.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not online through the proxy: %+v\n%s", st, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Enrolment and the identity check went through the proxy and closed;
	// the tunnel goes through it and stays open.
	for tunnels.Load() < 2 || open.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("proxy saw %d connections, %d open; want enrolment (closed) and the tunnel (open)", tunnels.Load(), open.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cs := cp.Authority.Connectors(); len(cs) != 1 {
		t.Fatalf("connectors = %+v", cs)
	}
}
