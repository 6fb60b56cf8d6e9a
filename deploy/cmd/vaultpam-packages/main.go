// Command vaultpam-packages builds the connector's other deployment shapes
// into dist/ — the DEB, the RPM and the container image as an OCI layout
// tarball — and signs them with the release's cosign-compatible key into the
// dist directory's one SHA256SUMS (`make packages`). See deploy/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(Main(ctx, Env{Stdout: os.Stdout, Stderr: os.Stderr, Args: os.Args[1:], Getenv: os.Getenv, LookupEnv: os.LookupEnv}))
}
