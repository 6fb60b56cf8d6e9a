package main

import (
	"context"
	"fmt"
	"log"

	"github.com/vaultpam/appliance/update/daemon"
)

func cmdServe(ctx context.Context, env Env, args []string) int {
	cfg := daemon.DefaultConfig()
	fs := newFlags(env, "serve")
	fs.StringVar(&cfg.Socket, "socket", cfg.Socket, "the updater's API socket")
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "update records")
	fs.StringVar(&cfg.ESPDir, "esp", cfg.ESPDir, "the UKIs on the ESP")
	fs.StringVar(&cfg.ConnectorSocket, "connector-socket", cfg.ConnectorSocket, "the connector's API socket")
	fs.StringVar(&cfg.ConnectorConfig, "connector-config", cfg.ConnectorConfig, "the connector's configuration (update_window)")
	fs.DurationVar(&cfg.DrainGrace, "drain-grace", cfg.DrainGrace, "how long sessions may go on before the reboot")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	logger := log.New(env.Stderr, "", 0)
	cfg.Logf = logger.Printf
	d, err := daemon.New(cfg)
	if err != nil {
		return fail(env.Stderr, err, "the updater cannot start; the appliance keeps running its current image")
	}
	if err := d.Run(ctx); err != nil {
		return fail(env.Stderr, fmt.Errorf("serving: %w", err), "")
	}
	return exitOK
}
