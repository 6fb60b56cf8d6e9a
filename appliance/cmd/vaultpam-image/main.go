// Command vaultpam-image builds the appliance's bootable raw disk image
// (build/disk.raw, build/image.json, build/dpkg-status). See
// appliance/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cli{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Args: os.Args[1:]})
	stop()
	os.Exit(code)
}
