package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/vaultpam/appliance/connector/agent"
	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/metrics"
	"github.com/vaultpam/appliance/connector/tunnel"
)

// Appliance defaults (common contracts).
const (
	defaultConfigPath = "/config/connector.yaml"
	defaultDataDir    = "/data"
)

func cmdRun(ctx context.Context, env Env, args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	tokenFile := fs.String("token-file", envOr(env, envTokenFile, ""), "read the enrolment or recovery token from this file once (PAM_ENROLMENT_TOKEN_FILE)")
	cfgPath := fs.String("config", envOr(env, config.EnvConfig, defaultConfigPath), "config file (PAM_AGENT_CONFIG); \"\" for environment only")
	dataDir := fs.String("data-dir", envOr(env, config.EnvDataDir, defaultDataDir), "identity directory (PAM_AGENT_DATA_DIR)")
	socket := fs.String("socket", envOr(env, config.EnvSocket, localapi.DefaultSocket), "local API socket (PAM_AGENT_SOCKET)")
	if err := parseFlags(fs, args, env.Stderr); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fail(env.Stderr, errors.New("unexpected argument (not repeated here: it could be a token)"), "tokens are never passed as arguments: use PAM_ENROLMENT_TOKEN, --token-file or the console")
		return exitUsage
	}

	// The token is read first and its variables removed, so it cannot
	// leak into anything this process starts or reports (token.go).
	token, err := startToken(env, *tokenFile, flagSet(fs, "token-file"))
	if err != nil {
		fail(env.Stderr, err, "")
		return exitUsage
	}

	path := *cfgPath
	if !flagSet(fs, "config") && env.Getenv(config.EnvConfig) == "" && env.Getenv(config.EnvControlPlaneURL) != "" {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			path = "" // container shape: configured through PAM_* variables only
		}
	}
	cfg, err := config.Load(path, env.Getenv)
	if err != nil {
		where := "configuration " + path
		if path == "" {
			where = "configuration from the environment"
		}
		failIn(env.Stderr, where, err, "fix the configuration (see connector/README.md, \"Configuration\"), then start the connector again; nothing was written")
		return exitConfig
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	if lim, src := memoryLimit(env.Getenv, os.ReadFile, debug.SetMemoryLimit); lim != math.MaxInt64 {
		log.Info("memory limit", "MiB", lim>>20, "from", src)
	}

	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		fail(env.Stderr, fmt.Errorf("data directory: %w", err), "PAM_AGENT_DATA_DIR must be a writable directory")
		return exitError
	}
	lock, err := identity.LockDir(*dataDir) // before the socket: a second instance never touches the first's
	if err != nil {
		fail(env.Stderr, err, "stop the other connector first (systemctl stop vaultpam-connector), or give this one its own PAM_AGENT_DATA_DIR")
		return exitError
	}
	defer lock.Close()
	mode, err := identity.DetectMode(*dataDir, nil)
	if err != nil {
		fail(env.Stderr, err, "")
		return exitError
	}
	roots, err := loadRoots(cfg.ControlPlaneCAFile)
	if err != nil {
		fail(env.Stderr, err, "")
		return exitConfig
	}
	var proxy *url.URL
	if cfg.ProxyURL != "" {
		proxy, _ = url.Parse(cfg.ProxyURL)
	}
	notify := env.Notify
	if notify == nil {
		notify = func(s string) { daemon.SdNotify(false, s) }
	}
	opt := agent.Options{
		Config: cfg, Store: &identity.Dir{Path: *dataDir}, Mode: mode, DataDir: *dataDir,
		Enroller: &enrol.Client{URL: strings.TrimRight(cfg.ControlPlaneURL, "/"), RootCAs: roots, Proxy: proxy, Name: cfg.ConnectorName, Step: env.Step},
		Token:    token, Version: version, Notify: notify, Logger: log, Step: env.Step,
	}
	var ag *agent.Agent
	upd, err := newUpdates(cfg, roots, proxy, *dataDir, env.Getenv(envUpdaterSocket), log, func() *identity.Identity { return ag.Identity() })
	if err != nil {
		fail(env.Stderr, err, "")
		return exitError
	}
	opt.Updates = upd
	counters := &tunnel.Counters{} // one for every tunnel of this process: totals survive reconnects
	opt.Counters = counters
	opt.Link = newLinkFactory(cfg, roots, proxy, log, upd, counters)
	ag, err = agent.New(opt)
	if err != nil {
		fail(env.Stderr, err, "")
		return exitError
	}
	log.Info("starting", "version", version, "mode", mode.Name, "data_dir", *dataDir, "fs", mode.FSType, "state", ag.State().String())

	ln, err := localapi.Listen(*socket)
	if err != nil {
		fail(env.Stderr, err, "set PAM_AGENT_SOCKET to a writable path")
		return exitError
	}
	metricsPage := metrics.Handler(func() (localapi.Status, tunnel.CounterSnapshot) { return ag.Status(), counters.Snapshot() })
	api := http.NewServeMux()
	api.Handle("/", localapi.Handler(ag))
	api.Handle("GET /metrics", metricsPage)
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	if stop := serveMetrics(cfg.MetricsListen, metricsPage, log); stop != nil {
		defer stop()
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(sctx)
		cancel()
		os.Remove(*socket)
	}()

	if wd, err := daemon.SdWatchdogEnabled(false); err == nil && wd > 0 && env.Notify == nil {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go ag.Watchdog(wctx, wd)
	}
	go upd.Run(ctx)
	if err := ag.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fail(env.Stderr, err, "")
		return exitError
	}
	log.Info("stopped", "state", ag.State().String())
	return exitOK
}

// serveMetrics serves page at GET /metrics on addr (config
// metrics_listen), plain HTTP, nothing else: the one optional inbound
// port. The page holds no secret. A port that cannot be opened is logged
// and the connector runs on (the metrics stay on the local API socket):
// monitoring must not stop the tunnel. It returns how to stop, nil when
// not serving.
func serveMetrics(addr string, page http.Handler, log *slog.Logger) func() {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("metrics_listen: cannot listen; the metrics stay on the local API socket only", "addr", addr, "err", err)
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", page)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() { srv.Close() }
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func loadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("control_plane_ca_file: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("control_plane_ca_file %s holds no PEM certificate", path)
	}
	return p, nil
}
