package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/vaultpam/appliance/tests/controlplane"
)

func cmdServe(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "serve")
	dir := fs.String("state", "", "lab state directory (created if missing)")
	listen := fs.String("listen", "127.0.0.1:8443", "TLS listen address (port 0 picks one; see DIR/url)")
	hb := fs.Duration("heartbeat-interval", 10*time.Second, "heartbeat interval the connectors are told to use")
	certTTL := fs.Duration("cert-ttl", 7*24*time.Hour, "lifetime of issued client certificates")
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
	cfg := controlplane.DefaultConfig(*dir)
	cfg.CertTTL = *certTTL
	lab, err := controlplane.NewLab(controlplane.LabConfig{Authority: cfg, Listen: *listen, HeartbeatInterval: *hb, Logger: log})
	if err != nil {
		return hinted{err, "another `vaultpam-lab serve` may be running on this directory, or the port is taken"}
	}
	defer lab.Close()
	aln, err := controlplane.ListenAdmin(*dir)
	if err != nil {
		return err
	}
	adm := &http.Server{Handler: controlplane.AdminHandler(lab.Authority, lab.AdminRoutes)}
	go adm.Serve(aln)
	defer adm.Close()
	if err := os.WriteFile(filepath.Join(*dir, "url"), []byte(lab.URL()+"\n"), 0o644); err != nil {
		return err
	}
	log.Info("lab control plane serving", "url", lab.URL(), "ca", filepath.Join(*dir, "ca.pem"), "heartbeat_interval", *hb)
	fmt.Fprintf(env.Stdout, "serving %s (CA %s)\n", lab.URL(), filepath.Join(*dir, "ca.pem"))
	if env.Ready != nil {
		env.Ready(lab.URL())
	}
	<-ctx.Done()
	log.Info("lab control plane stopping")
	return nil
}
