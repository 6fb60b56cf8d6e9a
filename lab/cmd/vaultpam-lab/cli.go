package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vaultpam/appliance/lab"
)

// Env is the outside world of one invocation; tests fill it in.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Args           []string
	// Ready, when set, is called by serve once it listens (tests).
	Ready func(url string)
}

const usage = `usage: vaultpam-lab <command> [flags]

  serve --state DIR --listen 127.0.0.1:PORT [--heartbeat-interval 10s]
  token create --state DIR --name NAME [--ttl 1h]
  token recover --state DIR --connector ID [--ttl 1h]
  connectors --state DIR [--json]
  revoke --state DIR --connector ID
  resources add --state DIR --name N --address HOST:PORT --connector ID
  connect --state DIR --resource N [--listen 127.0.0.1:PORT]
  update offer --state DIR --connector ID --file BUNDLE [--repo DIR]
  bundles --state DIR [--json]                       list the support bundles connectors uploaded
  bundles --state DIR --decrypt ID --out DIR2        decrypt one with DIR/support.key and unpack it
`

// Main runs one command and returns the exit code.
func Main(ctx context.Context, env Env) int {
	if len(env.Args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return 2
	}
	cmd, args := env.Args[0], env.Args[1:]
	sub := ""
	if (cmd == "token" || cmd == "resources" || cmd == "update") && len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	var err error
	switch cmd + " " + sub {
	case "serve ":
		err = cmdServe(ctx, env, args)
	case "token create", "token recover":
		err = cmdToken(env, sub, args)
	case "connectors ":
		err = cmdConnectors(env, args)
	case "revoke ":
		err = cmdRevoke(env, args)
	case "resources add":
		err = cmdResourcesAdd(env, args)
	case "connect ":
		err = cmdConnect(ctx, env, args)
	case "update offer":
		err = cmdUpdateOffer(env, args)
	case "bundles ":
		err = cmdBundles(env, args)
	case "help ", "-h ", "--help ":
		fmt.Fprint(env.Stdout, usage)
		return 0
	default:
		fmt.Fprintf(env.Stderr, "vaultpam-lab: error: unknown command %q\n%s", strings.TrimSpace(cmd+" "+sub), usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "vaultpam-lab: error: %s\n%s", ue.msg, usage)
		return 2
	default:
		fmt.Fprintf(env.Stderr, "vaultpam-lab: error: %s\n", err)
		var h hinted
		if errors.As(err, &h) {
			fmt.Fprintf(env.Stderr, "hint: %s\n", h.hint)
		}
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type hinted struct {
	err  error
	hint string
}

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }

func newFlags(env Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// admin reaches the state in dir: through a running serve if there is
// one, else directly (taking the state lock). close releases it.
func admin(dir string) (a lab.Admin, close func(), err error) {
	if dir == "" {
		return nil, nil, usageError{"--state DIR is required"}
	}
	if c, err := lab.DialAdmin(dir); err == nil {
		return c, func() {}, nil
	}
	au, err := lab.OpenAuthority(lab.DefaultAuthorityConfig(dir))
	if err != nil {
		return nil, nil, hinted{err, "if `vaultpam-lab serve` runs on this directory, its admin socket did not answer; restart it"}
	}
	return au, func() { au.Close() }, nil
}

func cmdToken(env Env, sub string, args []string) error {
	fs := newFlags(env, "token "+sub)
	dir := fs.String("state", "", "lab state directory")
	name := fs.String("name", "", "connector name (token create)")
	conn := fs.String("connector", "", "connector ID (token recover)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token stays valid")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if sub == "create" && *name == "" {
		return usageError{"token create needs --name NAME"}
	}
	if sub == "recover" && *conn == "" {
		return usageError{"token recover needs --connector ID"}
	}
	a, done, err := admin(*dir)
	if err != nil {
		return err
	}
	defer done()
	var tok string
	if sub == "create" {
		tok, err = a.CreateToken(*name, *ttl)
	} else {
		tok, err = a.CreateRecoveryToken(*conn, *ttl)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, formatToken(tok))
	return nil
}

func cmdRevoke(env Env, args []string) error {
	fs := newFlags(env, "revoke")
	dir := fs.String("state", "", "lab state directory")
	conn := fs.String("connector", "", "connector ID")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	a, done, err := admin(*dir)
	if err != nil {
		return err
	}
	defer done()
	return a.Revoke(*conn)
}
