package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/qrtext"
	"github.com/vaultpam/appliance/connector/state"
)

// cmdPair is `vaultpam-connector pair`: pairing without typing a token.
// It asks the running connector to pair (POST /v1/pair), prints the code,
// the URL where an administrator approves it and a QR code of that URL,
// and follows the status until Online or a refusal, printing each new
// code when one expires. --stop ends a pairing under way.
//
// Exit codes: 0 Online (or stopped with --stop), 1 refused / not
// reachable / timed out, 2 usage.
func cmdPair(ctx context.Context, env Env, args []string) int {
	fs := flag.NewFlagSet("pair", flag.ContinueOnError)
	socket := fs.String("socket", envOr(env, config.EnvSocket, localapi.DefaultSocket), "local API socket of the running connector (PAM_AGENT_SOCKET)")
	timeout := fs.Duration("timeout", 30*time.Minute, "how long to follow the pairing before giving up (the connector goes on)")
	poll := fs.Duration("poll", 500*time.Millisecond, "how often to read the status while following")
	qr := fs.String("qr", "dark", "QR code for a terminal with a dark background (dark), a light one (light), or none")
	stop := fs.Bool("stop", false, "stop the pairing under way instead")
	if err := parseFlags(fs, args, env.Stderr); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fail(env.Stderr, errors.New("unexpected argument (not repeated here)"), "pair takes flags only: vaultpam-connector pair [--socket S] [--qr dark|light|none] [--stop]")
		return exitUsage
	}
	if *qr != "dark" && *qr != "light" && *qr != "none" {
		fail(env.Stderr, errors.New("--qr must be dark, light or none"), "")
		return exitUsage
	}
	c := localapi.NewClient(*socket)
	before, err := c.Status(ctx)
	if err != nil {
		hint := "start the connector first (systemctl enable --now vaultpam-connector), or set PAM_AGENT_SOCKET to its socket"
		if errors.Is(err, iofs.ErrPermission) {
			hint = "the socket is for root and the vaultpam group: run it with sudo, or as a member of that group"
		}
		fail(env.Stderr, err, hint)
		return exitError
	}
	fmt.Fprintf(env.Stdout, "Connector %s: %s (%s)\n", nameOr(before), before.StateLabel, localapi.ModeLabel(before.Mode))
	if *stop {
		if err := c.StopPairing(ctx); err != nil {
			failLocal(env.Stderr, "the connector did not stop pairing", err)
			return exitError
		}
		st, _ := c.Status(ctx)
		fmt.Fprintf(env.Stdout, "Pairing stopped: %s\n", st.StateLabel)
		return exitOK
	}
	if _, err := c.StartPairing(ctx); err != nil {
		failLocal(env.Stderr, "the connector did not start pairing", err)
		return exitError
	}
	fmt.Fprintln(env.Stdout, "Pairing; following its status (Ctrl-C stops watching, not the pairing: `vaultpam-connector pair --stop` stops it).")
	return followPairing(ctx, env, c, *qr, *timeout, *poll)
}

// failLocal reports a refusal of the local API with its hint.
func failLocal(w io.Writer, what string, err error) {
	var le *localapi.Error
	if errors.As(err, &le) {
		fail(w, fmt.Errorf("%s (%s): %s", what, le.Code, le.Message), le.Hint)
		return
	}
	fail(w, err, "is the connector still running? (systemctl status vaultpam-connector)")
}

// followPairing prints each code and state change until Online (success)
// or back to waiting (denied, refused).
func followPairing(ctx context.Context, env Env, c *localapi.Client, qr string, timeout, poll time.Duration) int {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	last, code := "", ""
	for {
		st, err := c.Status(ctx)
		if err == nil {
			if p := st.Pairing; p != nil && p.UserCode != code {
				code = p.UserCode
				printPairing(env.Stdout, *p, qr)
			}
			if line := st.StateLabel + ": " + st.Reason; line != last {
				last = line
				if st.Reason != "" {
					fmt.Fprintf(env.Stdout, "  %s: %s\n", st.StateLabel, st.Reason)
				} else {
					fmt.Fprintf(env.Stdout, "  %s\n", st.StateLabel)
				}
			}
			switch st.State {
			case state.Online.String():
				fmt.Fprintf(env.Stdout, "Online: connector %s is connected to %s\n", nameOr(st), st.ControlPlane)
				return exitOK
			case state.AwaitingToken.String(), state.NeedsRecovery.String():
				hint := st.Hint
				if hint == "" {
					hint = "run `vaultpam-connector pair` again for a new code, or `vaultpam-connector enrol` with a token"
				}
				fail(env.Stderr, fmt.Errorf("pairing did not succeed: %s: %s", st.StateLabel, st.Reason), hint)
				return exitError
			}
		}
		select {
		case <-ctx.Done():
			why := "gave up following the pairing after " + timeout.String()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = "stopped following the pairing"
			}
			fail(env.Stderr, fmt.Errorf("%s (last state: %s)", why, strings.TrimSuffix(last, ": ")),
				"the connector goes on pairing; watch it with `vaultpam-connector status`, stop it with `vaultpam-connector pair --stop`")
			return exitError
		case <-tick.C:
		}
	}
}

// printPairing shows a code: the URL to open, the code, and the QR code
// of the URL with the code in it.
func printPairing(w io.Writer, p localapi.Pairing, qr string) {
	fmt.Fprintf(w, "\nTo pair this connector, open on a phone or a computer:\n\n    %s\n\n", p.VerificationURLComplete)
	fmt.Fprintf(w, "or open %s and enter the code. Sign in and approve.\n\n", p.VerificationURL)
	fmt.Fprintf(w, "    Code  %s    valid until %s (a new code follows by itself)\n\n", p.UserCode, p.ExpiresAt.UTC().Format("15:04:05 MST"))
	if qr == "none" {
		return
	}
	code, err := qrtext.Encode(p.VerificationURLComplete, qrtext.Low)
	if err != nil {
		fmt.Fprintf(w, "(no QR code: %v)\n\n", err)
		return
	}
	for _, l := range code.Lines(qrtext.Options{LightBackground: qr == "light"}) {
		fmt.Fprintf(w, "    %s\n", l)
	}
	fmt.Fprintln(w)
}
