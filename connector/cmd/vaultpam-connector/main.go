// Command vaultpam-connector is the VaultPAM connector daemon and its
// small CLI: run, enrol, status, version. See connector/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

func main() {
	if err := hideTokenFromEnviron(os.Args, os.Environ()); err != nil {
		fail(os.Stderr, err, "pass the token in a file instead: PAM_ENROLMENT_TOKEN_FILE=/path (a mounted secret)")
		os.Exit(exitError)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(Main(ctx, Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Args: os.Args[1:], Getenv: os.Getenv, Unsetenv: os.Unsetenv}))
}
