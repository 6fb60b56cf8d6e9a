package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
)

func cmdStatus(ctx context.Context, env Env, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the status JSON")
	socket := fs.String("socket", envOr(env, config.EnvSocket, localapi.DefaultSocket), "local API socket")
	check := fs.String("check", "", "probe mode: live (exit 0 when the local API answers) or ready (exit 0 when Online)")
	if err := parseFlags(fs, args, env.Stderr); err != nil {
		return exitUsage
	}
	if *check != "" && *check != "live" && *check != "ready" {
		fail(env.Stderr, fmt.Errorf("--check %q is not live or ready", *check), "")
		return exitUsage
	}
	st, err := localapi.NewClient(*socket).Status(ctx)
	if *check != "" {
		return probe(env, *check, st, err)
	}
	if err != nil {
		fail(env.Stderr, err, "is the connector running? (systemctl status vaultpam-connector; or set PAM_AGENT_SOCKET)")
		return exitError
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
		return exitOK
	}
	printStatus(env.Stdout, st)
	return exitOK
}

func printStatus(w io.Writer, st localapi.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("State", st.StateLabel)
	row("Reason", st.Reason)
	row("Next step", st.Hint)
	durable := "not durable"
	if st.DataDurable {
		durable = "durable"
	}
	row("Mode", fmt.Sprintf("%s (data dir %s is %s)", localapi.ModeLabel(st.Mode), st.DataDir, durable))
	if st.ConnectorID != "" {
		row("Connector", fmt.Sprintf("%s (%s)", st.ConnectorID, st.ConnectorName))
	} else {
		row("Connector", st.ConnectorName)
	}
	row("Control plane", st.ControlPlane)
	if !st.CertNotAfter.IsZero() {
		row("Certificate", "valid until "+st.CertNotAfter.Format(time.RFC3339))
	}
	if !st.LastHeartbeat.IsZero() {
		row("Last heartbeat", fmt.Sprintf("%s (every %s, rtt %s)", st.LastHeartbeat.Format(time.RFC3339), time.Duration(st.HeartbeatInterval), time.Duration(st.TunnelRTT)))
	}
	row("Active sessions", fmt.Sprint(st.ActiveSessions))
	if st.AllowedTargets != nil {
		row("Targets", st.AllowedTargets.Summary)
	}
	row("Version", st.Version)
	tw.Flush()
}

// probe answers --check for exec probes (Kubernetes, container health
// checks) with one line and an exit code: live = the local API answers,
// so the daemon is not hung; ready = the connector is Online.
func probe(env Env, check string, st localapi.Status, err error) int {
	if err != nil {
		fmt.Fprintf(env.Stdout, "not %s: %v\n", check, err)
		return exitError
	}
	if check == "ready" && st.State != state.Online.String() {
		reason := ""
		if st.Reason != "" {
			reason = ": " + st.Reason
		}
		fmt.Fprintf(env.Stdout, "not ready: %s%s\n", st.StateLabel, reason)
		return exitError
	}
	fmt.Fprintf(env.Stdout, "%s: %s\n", check, st.StateLabel)
	return exitOK
}
