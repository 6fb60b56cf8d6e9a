// Command vaultpam-update is the appliance's image updater: the daemon
// (serve), the health gate of a trial boot (gate), and small clients of
// its local API (status, install, rollback). See update/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(Main(ctx, Env{Stdout: os.Stdout, Stderr: os.Stderr, Args: os.Args[1:]}))
}
