package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/lab"
)

func formatToken(t string) string { return protocol.FormatToken(t) }

// connectorView is one line of `connectors --json`.
type connectorView struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Status        string     `json:"status"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
	Reason        string     `json:"reason,omitempty"`
	// Version is the running version (the appliance image's, or the
	// connector's own in other shapes); Update the latest image update.
	Version string          `json:"version,omitempty"`
	Update  *lab.UpdateInfo `json:"update,omitempty"`
	// ClockOffset is the connector's estimate of the lab's clock minus its
	// own: positive when the connector's clock is behind.
	ClockOffset *localapi.Duration `json:"clock_offset,omitempty"`
}

func cmdConnectors(env Env, args []string) error {
	fs := newFlags(env, "connectors")
	dir := fs.String("state", "", "lab state directory")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	a, done, err := admin(*dir)
	if err != nil {
		return err
	}
	defer done()
	cs, err := a.ListConnectors()
	if err != nil {
		return err
	}
	views := make([]connectorView, 0, len(cs))
	for _, c := range cs {
		v := connectorView{ID: c.ID, Name: c.Name, Status: c.Status, Reason: c.StatusReason, Version: c.Version, Update: c.Update, ClockOffset: c.ClockOffset}
		if !c.LastHeartbeat.IsZero() {
			t := c.LastHeartbeat
			v.LastHeartbeat = &t
		}
		views = append(views, v)
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tVERSION\tLAST HEARTBEAT\tCLOCK\tUPDATE\tREASON")
	for _, v := range views {
		hb := "-"
		if v.LastHeartbeat != nil {
			hb = v.LastHeartbeat.Format(time.RFC3339)
		}
		up, ver := "-", v.Version
		if v.Update != nil {
			up = v.Update.Version + " " + v.Update.State
		}
		if ver == "" {
			ver = "-"
		}
		clock := "-"
		if v.ClockOffset != nil {
			clock = time.Duration(*v.ClockOffset).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Name, v.Status, ver, hb, clock, up, v.Reason)
	}
	return tw.Flush()
}
