package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Env is the outside world of one CLI invocation; tests fill it in.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Args           []string // without the program name
	Getenv         func(string) string
	Unsetenv       func(string) error
	// Notify replaces sd_notify (tests); nil means the real one.
	Notify func(string)
}

const usage = `usage: vaultpam-connector <command> [flags]

commands:
  run       run the connector daemon (token from PAM_ENROLMENT_TOKEN, PAM_ENROLMENT_TOKEN_FILE,
            --token-file or later from enrol / the console)
  enrol     type the enrolment or recovery token for the running connector (prompt without echo,
            or one line on standard input) and follow it until Online
  status    show the running connector's status (--json for the status JSON;
            --check live|ready for probes: exit 0 when the local API answers / when Online)
  version   print the version
`

// exit codes
const (
	exitOK     = 0
	exitError  = 1
	exitUsage  = 2
	exitConfig = 3
)

// Main runs one command and returns the exit code.
func Main(ctx context.Context, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Unsetenv == nil {
		env.Unsetenv = func(string) error { return nil }
	}
	if len(env.Args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return exitUsage
	}
	cmd, args := env.Args[0], env.Args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, env, args)
	case "enrol", "enroll":
		return cmdEnrol(ctx, env, args)
	case "status":
		return cmdStatus(ctx, env, args)
	case "version", "--version":
		fmt.Fprintf(env.Stdout, "vaultpam-connector %s\n", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return exitOK
	}
	fmt.Fprintf(env.Stderr, "vaultpam-connector: error: unknown command %q\n%s", cmd, usage)
	return exitUsage
}

// fail prints an error and a hint the way people read them. An error
// joining several (errors.Join, nested or not) is listed one per line.
func fail(w io.Writer, err error, hint string) { failIn(w, "", err, hint) }

// failIn is fail with a context ("configuration bad.yaml") put first.
func failIn(w io.Writer, context string, err error, hint string) {
	if context != "" {
		context += ": "
	}
	if errs := flatten(err); len(errs) > 1 {
		fmt.Fprintf(w, "vaultpam-connector: error: %s%d problems:\n", context, len(errs))
		for _, e := range errs {
			fmt.Fprintf(w, "  - %s\n", e)
		}
	} else {
		fmt.Fprintf(w, "vaultpam-connector: error: %s%s\n", context, err)
	}
	if hint != "" {
		fmt.Fprintf(w, "hint: %s\n", hint)
	}
}

// flatten expands errors.Join trees into their leaves.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func envOr(env Env, key, def string) string {
	if v := strings.TrimSpace(env.Getenv(key)); v != "" {
		return v
	}
	return def
}
