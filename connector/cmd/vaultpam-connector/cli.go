package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/vaultpam/appliance/connector/redact"
	"github.com/vaultpam/appliance/connector/support"
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
	// Support edits the support bundle's sources before collecting
	// (tests: no journald here); nil leaves the appliance's.
	Support func(*support.Options)
	// Step is called at the named points of an enrolment (crash tests);
	// nil in the real program.
	Step func(string)
}

const usage = `usage: vaultpam-connector <command> [flags]

commands:
  run       run the connector daemon (token from PAM_ENROLMENT_TOKEN, PAM_ENROLMENT_TOKEN_FILE,
            --token-file or later from enrol / the console)
  enrol     type the enrolment or recovery token for the running connector (prompt without echo,
            or one line on standard input) and follow it until Online
  status    show the running connector's status (--json for the status JSON;
            --check live|ready for probes: exit 0 when the local API answers / when Online)
  diagnose  check DNS, TCP and TLS to the control plane with this configuration (--json)
  support-bundle [--out FILE] [--json]
            collect status, journal, network, diagnostics, image, verity and config (secrets
            redacted), encrypt to the vendor's key and send through the tunnel; exit 4 when
            it cannot be sent (the tunnel is down), --out keeps the encrypted file
  version   print the version
`

// exit codes (and exitNotSent, support.go)
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
	// Everything this program prints, its log included, goes through the
	// redactor: nothing shaped like a token or a URL's user:password@
	// leaves, whatever a message or a flag error would have repeated.
	env.Stdout, env.Stderr = redact.Writer(env.Stdout), redact.Writer(env.Stderr)
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
	case "diagnose":
		return cmdDiagnose(ctx, env, args)
	case "support-bundle":
		return cmdSupportBundle(ctx, env, args)
	case "version", "--version":
		fmt.Fprintf(env.Stdout, "vaultpam-connector %s\n", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return exitOK
	}
	fmt.Fprintf(env.Stderr, "vaultpam-connector: error: unknown command %s\n%s", commandName(cmd), usage)
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

// commandName quotes an unknown command when it looks like one (a short
// lower-case word); anything else (a token typed in the wrong place) is
// not repeated.
func commandName(s string) string {
	if len(s) <= 20 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz-") == "" {
		return fmt.Sprintf("%q", s)
	}
	return "(not shown: it could be a secret)"
}

func envOr(env Env, key, def string) string {
	if v := strings.TrimSpace(env.Getenv(key)); v != "" {
		return v
	}
	return def
}
