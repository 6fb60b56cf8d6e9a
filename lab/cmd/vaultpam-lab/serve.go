package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaultpam/appliance/lab"
)

func cmdServe(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "serve")
	dir := fs.String("state", "", "lab state directory (created if missing)")
	listen := fs.String("listen", "127.0.0.1:8443", "TLS listen address (port 0 picks one; see DIR/url)")
	hb := fs.Duration("heartbeat-interval", 10*time.Second, "heartbeat interval the connectors are told to use")
	certTTL := fs.Duration("cert-ttl", 7*24*time.Hour, "lifetime of issued client certificates")
	publicURL := fs.String("public-url", "", "the lab as administrators' browsers reach it, for pairing links (default: the address each connector used)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *dir == "" {
		return usageError{"serve needs --state DIR"}
	}
	if *hb <= 0 {
		return usageError{"--heartbeat-interval must be positive"}
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	cfg := lab.DefaultAuthorityConfig(*dir)
	cfg.CertTTL = *certTTL
	cp, err := lab.New(lab.Config{Authority: cfg, Listen: *listen, HeartbeatInterval: *hb, PublicURL: strings.TrimRight(*publicURL, "/"), Logger: log})
	if err != nil {
		return hinted{err, "another `vaultpam-lab serve` may be running on this directory, or the port is taken"}
	}
	defer cp.Close()
	aln, err := lab.ListenAdmin(*dir)
	if err != nil {
		return err
	}
	adm := &http.Server{Handler: lab.AdminHandler(cp.Authority, cp.AdminRoutes)}
	go adm.Serve(aln)
	defer adm.Close()
	if err := os.WriteFile(filepath.Join(*dir, "url"), []byte(cp.URL()+"\n"), 0o644); err != nil {
		return err
	}
	log.Info("lab control plane serving", "url", cp.URL(), "ca", filepath.Join(*dir, "ca.pem"), "heartbeat_interval", *hb)
	fmt.Fprintf(env.Stdout, "serving %s (CA %s)\n", cp.URL(), filepath.Join(*dir, "ca.pem"))
	fmt.Fprintf(env.Stdout, "pairing approval page %s%s (password: vaultpam-lab admin-password --state %s)\n", cp.URL(), "/pair", *dir)
	if env.Ready != nil {
		env.Ready(cp.URL())
	}
	<-ctx.Done()
	log.Info("lab control plane stopping")
	return nil
}
