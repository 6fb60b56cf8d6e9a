package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
)

// cmdEnrol is `vaultpam-connector enrol`, the native installer's prompt:
// it asks for the enrolment (or recovery) token without echo, checks its
// check character locally, hands it to the running connector over the
// local API and follows the status until Online or a refusal. The token
// never appears in argv, on the screen or in the output.
//
// Exit codes: 0 Online, 1 refused / not reachable / timed out, 2 usage.
func cmdEnrol(ctx context.Context, env Env, args []string) int {
	fs := flag.NewFlagSet("enrol", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	socket := fs.String("socket", envOr(env, config.EnvSocket, localapi.DefaultSocket), "local API socket of the running connector (PAM_AGENT_SOCKET)")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long to follow the enrolment before giving up")
	poll := fs.Duration("poll", 500*time.Millisecond, "how often to read the status while following")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fail(env.Stderr, fmt.Errorf("unexpected argument %q", fs.Arg(0)), "the token is never an argument: run `vaultpam-connector enrol` and type it at the prompt, or pipe it on standard input")
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

	typed, err := readToken(ctx, env)
	if err != nil {
		fail(env.Stderr, err, "run it again and type the token from the dashboard (Connectors → Add Connector)")
		return exitError
	}
	token, err := protocol.ParseToken(typed)
	if err != nil {
		code := "token_invalid"
		if errors.Is(err, protocol.ErrTokenTypo) {
			code = protocol.CodeTokenTypo
		}
		fail(env.Stderr, err, tokenCodeHint(code)+"; nothing was sent")
		return exitError
	}

	submitted := time.Now()
	if err := c.SubmitToken(ctx, token); err != nil {
		var le *localapi.Error
		if errors.As(err, &le) {
			fail(env.Stderr, fmt.Errorf("the connector refused the token (%s): %s", le.Code, le.Message), le.Hint)
		} else {
			fail(env.Stderr, err, "is the connector still running? (systemctl status vaultpam-connector)")
		}
		return exitError
	}
	fmt.Fprintln(env.Stdout, "Token handed to the connector; following its status (Ctrl-C stops watching, not the enrolment).")
	return followEnrolment(ctx, env, c, before.State == state.Online.String(), submitted, *timeout, *poll)
}

// followEnrolment prints each state change until the connector is Online
// after the hand-over (success) or back to waiting (refused).
func followEnrolment(ctx context.Context, env Env, c *localapi.Client, wasOnline bool, submitted time.Time, timeout, poll time.Duration) int {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	last := ""
	for {
		st, err := c.Status(ctx)
		if err == nil {
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
				// A re-enrolment of an online connector is done when it
				// is online again on the new identity.
				if !wasOnline || !st.Since.Before(submitted) {
					fmt.Fprintf(env.Stdout, "Online: connector %s is connected to %s\n", nameOr(st), st.ControlPlane)
					return exitOK
				}
			case state.AwaitingToken.String(), state.NeedsRecovery.String():
				hint := st.Hint
				if hint == "" {
					hint = "check the token in the dashboard and run `vaultpam-connector enrol` again"
				}
				fail(env.Stderr, fmt.Errorf("enrolment did not succeed: %s: %s", st.StateLabel, st.Reason), hint)
				return exitError
			}
		}
		select {
		case <-ctx.Done():
			why := "gave up following the enrolment after " + timeout.String()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = "stopped following the enrolment"
			}
			fail(env.Stderr, fmt.Errorf("%s (last state: %s)", why, strings.TrimSuffix(last, ": ")),
				"the connector goes on by itself; watch it with `vaultpam-connector status`, and check the control plane URL and the network if it stays Enrolling")
			return exitError
		case <-tick.C:
		}
	}
}

// readToken reads the token: from the terminal without echo when standard
// input is one (the prompt and the read go through /dev/tty), otherwise one
// line from standard input, so scripts can pipe it in.
func readToken(ctx context.Context, env Env) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return "", fmt.Errorf("opening the terminal: %w", err)
		}
		defer tty.Close()
		return readHidden(ctx, tty)
	}
	line, err := bufio.NewReader(io.LimitReader(env.Stdin, maxToken+1)).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no token on standard input")
		}
		return "", fmt.Errorf("reading the token from standard input: %w", err)
	}
	return line, nil
}

// readHidden prompts on tty and reads one line with echo off. Echo goes
// off before the prompt is shown, so nothing typed after the prompt
// appears, however fast (a paste). Ctrl-C (ctx ending) restores the
// terminal before returning.
func readHidden(ctx context.Context, tty *os.File) (string, error) {
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("reading the terminal's settings: %w", err)
	}
	hidden := *old
	hidden.Lflag &^= unix.ECHO
	hidden.Lflag |= unix.ICANON | unix.ISIG
	hidden.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &hidden); err != nil {
		return "", fmt.Errorf("turning the terminal's echo off: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(tty, "Enrolment token (input hidden): ")
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(io.LimitReader(tty, maxToken+1)).ReadString('\n')
		done <- result{line, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(tty)
		if r.err != nil && r.line == "" {
			return "", fmt.Errorf("reading the token: %w", r.err)
		}
		return r.line, nil
	case <-ctx.Done():
		fmt.Fprintln(tty)
		return "", errors.New("interrupted")
	}
}

func nameOr(st localapi.Status) string {
	switch {
	case st.ConnectorID != "" && st.ConnectorName != "":
		return st.ConnectorID + " (" + st.ConnectorName + ")"
	case st.ConnectorName != "":
		return st.ConnectorName
	}
	return st.ConnectorID
}

// tokenCodeHint says what to do about a token the local check refused.
func tokenCodeHint(code string) string {
	if code == protocol.CodeTokenTypo {
		return "a character was mistyped: compare the token with the dashboard character by character"
	}
	return "a token is 20 characters in 4 groups of 5 (letters and digits, case does not matter)"
}
