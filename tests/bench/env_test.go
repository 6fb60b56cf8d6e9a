package bench

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// conn is a session as the benchmarks use it: a net.Conn with half-close.
type conn interface {
	net.Conn
	CloseWrite() error
}

// path is one way to reach a target: direct TCP, the tunnel, or ssh -R.
type path struct {
	name string
	dial func(ctx context.Context, target string) (conn, error)
	pid  int // the forwarding process whose RSS is measured; 0: none
}

// env is what every benchmark shares: targets, the broker, the connector
// process and, when available, sshd with an ssh -R client.
type env struct {
	dir        string
	echo, sink *server
	paths      []path
	skipSSH    string           // why the ssh column is missing
	idleRSS    map[string]int64 // KiB, sampled after start-up
	procs      []*exec.Cmd
	closers    []func()
}

var (
	envOnce sync.Once
	shared  *env
	envErr  error
)

func getEnv(b *testing.B) *env {
	envOnce.Do(func() { shared, envErr = setup() })
	if envErr != nil {
		b.Fatalf("setting up the benchmark: %v", envErr)
	}
	return shared
}

const connectorEnv = "VAULTPAM_BENCH_CONNECTOR_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(connectorEnv); dir != "" {
		os.Exit(connectorMain(dir))
	}
	raiseFileLimit()
	code := m.Run()
	if shared != nil {
		report(shared)
		shared.close()
	}
	os.Exit(code)
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func setup() (*env, error) {
	e := &env{}
	var err error
	if e.dir, err = os.MkdirTemp("", "vaultpam-bench-"); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { os.RemoveAll(e.dir) })
	if e.echo, err = listen(echo); err != nil {
		return nil, err
	}
	if e.sink, err = listen(sink); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.echo.Close, e.sink.Close)
	e.paths = append(e.paths, path{name: "direct", dial: func(ctx context.Context, target string) (conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}})
	tp, err := e.startTunnel()
	if err != nil {
		e.close()
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	e.paths = append(e.paths, tp)
	sp, err := e.startSSH()
	if err != nil {
		e.skipSSH = err.Error()
		fmt.Fprintf(os.Stderr, "bench: ssh -R column skipped: %v\n", err)
	} else {
		e.paths = append(e.paths, sp)
	}
	time.Sleep(time.Second) // let start-up garbage settle
	e.idleRSS = map[string]int64{}
	for _, p := range e.paths {
		if p.pid != 0 {
			if kib, err := rssKiB(p.pid); err == nil {
				e.idleRSS[p.name] = kib
			}
		}
	}
	return e, nil
}

func (e *env) close() {
	for _, p := range e.procs {
		if p.Process != nil {
			p.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				p.Process.Kill()
				<-done
			}
		}
	}
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// startTunnel starts the broker on loopback TLS and the connector as a
// separate process (this binary re-executed).
func (e *env) startTunnel() (path, error) {
	pki, err := brokertest.NewPKI()
	if err != nil {
		return path{}, err
	}
	bc := broker.DefaultConfig()
	bc.Registry = &broker.MemoryRegistry{}
	bc.ClientCAs = pki.Pool
	b, err := broker.New(bc)
	if err != nil {
		return path{}, err
	}
	tlsConf, err := pki.ServerTLS()
	if err != nil {
		return path{}, err
	}
	srv, err := brokertest.Serve(b, "127.0.0.1:0", tlsConf)
	if err != nil {
		return path{}, err
	}
	e.closers = append(e.closers, srv.Close)
	cert, err := pki.ClientCert("bench", time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		return path{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		return path{}, err
	}
	dir := filepath.Join(e.dir, "connector")
	os.MkdirAll(dir, 0o700)
	files := map[string][]byte{
		"ca.pem":   pki.CAPEM(),
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"addr":     []byte(srv.Addr),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return path{}, err
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), connectorEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if _, err := cmd.StdinPipe(); err != nil { // the child exits when we do
		return path{}, err
	}
	if err := cmd.Start(); err != nil {
		return path{}, err
	}
	e.procs = append(e.procs, cmd)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s, ok := b.Connector("bench"); ok && s.Status == broker.StatusOnline {
			break
		}
		if time.Now().After(deadline) {
			return path{}, errors.New("connector process did not come online")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return path{name: "tunnel", pid: cmd.Process.Pid, dial: func(ctx context.Context, target string) (conn, error) {
		return b.Dial(ctx, "bench", target)
	}}, nil
}

// connectorMain is the connector process: a tunnel.Client with the
// identity in dir, until stdin closes.
func connectorMain(dir string) int {
	read := func(n string) []byte { b, _ := os.ReadFile(filepath.Join(dir, n)); return b }
	cert, err := tls.X509KeyPair(read("cert.pem"), read("key.pem"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench connector:", err)
		return 1
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(read("ca.pem"))
	cfg := tunnel.DefaultConfig()
	cfg.Address = string(read("addr"))
	cfg.RootCAs = pool
	cfg.Certificate = func() (*tls.Certificate, error) { return &cert, nil }
	cfg.Version = "bench"
	cfg.AllowedTargets = []string{"127.0.0.0/8"} // the targets are on loopback, refused by default
	c, err := tunnel.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench connector:", err)
		return 1
	}
	if f := os.Getenv("VAULTPAM_BENCH_CONNECTOR_CPUPROFILE"); f != "" {
		if out, err := os.Create(f); err == nil {
			pprof.StartCPUProfile(out)
			defer pprof.StopCPUProfile()
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n') // EOF when the parent exits
		cancel()
	}()
	c.Run(ctx)
	return 0
}

// rssKiB reads a process's resident set size.
func rssKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuTime is the CPU time (user+system) used so far by this process
// (benchmark client, targets and, for the tunnel, the broker) plus the
// forwarding process pid when not 0. On a shared machine the CPU cost per
// MiB is steadier than the wall-clock rate.
func cpuTime(pid int) time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if pid != 0 {
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			// Fields after the command name (which may contain spaces):
			// utime and stime are fields 14 and 15, in clock ticks (100/s).
			if i := strings.LastIndexByte(string(data), ')'); i >= 0 {
				f := strings.Fields(string(data[i+1:]))
				if len(f) > 12 {
					ut, _ := strconv.ParseInt(f[11], 10, 64)
					st, _ := strconv.ParseInt(f[12], 10, 64)
					d += time.Duration(ut+st) * 10 * time.Millisecond
				}
			}
		}
	}
	return d
}
