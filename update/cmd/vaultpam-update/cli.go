package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/vaultpam/appliance/connector/localapi"
)

// Env is the outside world of one invocation; tests fill it in.
type Env struct {
	Stdout, Stderr io.Writer
	Args           []string // without the program name
}

const usage = `usage: vaultpam-update <command> [flags]

commands:
  serve      run the updater daemon (local API on /run/vaultpam-update/update.sock)
  gate       the health gate of a trial boot (vaultpam-update-gate.service)
  status     show the image and update status (--json for the API's JSON)
  install    install an update: --dir DIR --target NAME (a download), or --cdrom
  rollback   boot the other slot's image on trial (--confirm)
  version    print the version
`

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Main runs one command and returns the exit code.
func Main(ctx context.Context, env Env) int {
	if len(env.Args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return exitUsage
	}
	cmd, args := env.Args[0], env.Args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, env, args)
	case "gate":
		return cmdGate(ctx, env, args)
	case "status":
		return cmdStatus(ctx, env, args)
	case "install":
		return cmdInstall(ctx, env, args)
	case "rollback":
		return cmdRollback(ctx, env, args)
	case "version", "--version":
		fmt.Fprintf(env.Stdout, "vaultpam-update %s\n", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return exitOK
	}
	fmt.Fprintf(env.Stderr, "vaultpam-update: error: unknown command %q\n%s", cmd, usage)
	return exitUsage
}

func newFlags(env Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("vaultpam-update "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// fail prints an error the way people read it: the API's hint on its own
// line.
func fail(w io.Writer, err error, hint string) int {
	var e *localapi.Error
	if errors.As(err, &e) {
		fmt.Fprintf(w, "vaultpam-update: error: %s\n", e.Message)
		if e.Hint != "" {
			hint = e.Hint
		}
		if e.Code != "" {
			fmt.Fprintf(w, "code: %s\n", e.Code)
		}
	} else {
		fmt.Fprintf(w, "vaultpam-update: error: %v\n", err)
	}
	if hint != "" {
		fmt.Fprintf(w, "hint: %s\n", hint)
	}
	return exitError
}
