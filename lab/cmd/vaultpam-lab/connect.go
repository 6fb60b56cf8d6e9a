package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/vaultpam/appliance/lab"
)

// cmdConnect opens a session to a resource through the running serve:
// stdin/stdout like nc, or with --listen a local port forward (one
// session per accepted connection). A session that is cut reports its
// reason on stderr and exits 1.
func cmdConnect(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "connect")
	dir := fs.String("state", "", "lab state directory of a running serve")
	res := fs.String("resource", "", "resource name")
	listen := fs.String("listen", "", "forward connections to this local address (127.0.0.1:PORT) instead of stdin/stdout")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *dir == "" || *res == "" {
		return usageError{"connect needs --state DIR and --resource NAME"}
	}
	ac, err := lab.DialAdmin(*dir)
	if err != nil {
		return hinted{fmt.Errorf("no lab server answers on %s: %w", *dir, err), "start it with `vaultpam-lab serve --state " + *dir + "`"}
	}
	if *listen == "" {
		s, err := ac.Connect(ctx, *res)
		if err != nil {
			return explain(err)
		}
		return pipe(s, env.Stdin, env.Stdout)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Fprintf(env.Stderr, "vaultpam-lab: forwarding %s to resource %s\n", ln.Addr(), *res)
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			s, err := ac.Connect(ctx, *res)
			if err != nil {
				fmt.Fprintf(env.Stderr, "vaultpam-lab: %v\n", explain(err))
				return
			}
			if err := pipe(s, c, c); err != nil {
				fmt.Fprintf(env.Stderr, "vaultpam-lab: %v\n", err)
			}
		}()
	}
}

func explain(err error) error {
	var r *lab.Refused
	if errors.As(err, &r) && r.Reason != "" {
		return fmt.Errorf("session refused (%s): %s", r.Reason, r.ConnectError.Error)
	}
	return err
}

// pipe relays in → session and session → out with half-close; it returns
// the session's end reason when the session was cut.
func pipe(s *lab.ConnectStream, in io.Reader, out io.Writer) error {
	defer s.Close()
	go func() {
		io.Copy(s, in)
		s.CloseWrite()
	}()
	_, err := io.Copy(out, s)
	if cw, ok := out.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if err != nil {
		return err
	}
	return nil
}
