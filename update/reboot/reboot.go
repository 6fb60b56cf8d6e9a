// Package reboot ends the running boot for an installed update: it asks
// the connector to drain (new sessions refused, in-flight sessions end
// with reason update_reboot after a grace period), waits for the drain to
// finish or the grace to pass, then reboots.
//
// The connector's drain call is POST /v1/drain on its local API socket
// with {"reason":"update_reboot","grace":"60s"}. A connector without that
// call (an older one), or none at all, does not block the reboot: the
// updater waits at most the grace, then reboots anyway; the control plane
// then ends the connector's sessions with connector_offline.
package reboot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
)

// ReasonUpdateReboot is the session end reason of a drain for an update.
const ReasonUpdateReboot = "update_reboot"

// DefaultGrace is how long in-flight sessions may go on.
const DefaultGrace = 60 * time.Second

// Drainer asks the connector at Socket to drain.
type Drainer struct {
	Socket string // localapi.DefaultSocket on the appliance
	Grace  time.Duration
	// Poll is the time between status reads while waiting; 0 means 1 s.
	Poll time.Duration
	Logf func(format string, args ...any)
}

func (d *Drainer) logf(format string, args ...any) {
	if d.Logf != nil {
		d.Logf(format, args...)
	}
}

// Drain asks for the drain; the connector answers when its drain is over.
// A connector that cannot drain is watched instead until it reports no
// active session or the grace has passed. Drain never fails: what went
// wrong is logged, and the reboot goes ahead.
func (d *Drainer) Drain(ctx context.Context) {
	grace := d.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	pctx, pcancel := context.WithTimeout(ctx, grace+15*time.Second)
	err := d.post(pctx, grace)
	pcancel()
	if err == nil {
		d.logf("reboot: the connector drained its sessions")
		return
	}
	d.logf("reboot: the connector did not drain on request (%v); waiting for its sessions up to %s", err, grace)
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	poll := d.Poll
	if poll <= 0 {
		poll = time.Second
	}
	c := localapi.NewClient(d.Socket)
	for {
		st, err := c.Status(ctx)
		if err == nil && st.ActiveSessions == 0 {
			d.logf("reboot: no session left on the connector")
			return
		}
		if err != nil && ctx.Err() == nil {
			// Not reachable: nothing to wait for.
			d.logf("reboot: connector status: %v", err)
			return
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			d.logf("reboot: drain grace of %s over with sessions still active; rebooting", grace)
			return
		case <-t.C:
		}
	}
}

func (d *Drainer) post(ctx context.Context, grace time.Duration) error {
	// Not localapi.Client: its 5 s timeout would cancel the drain (the
	// connector ties the drain to the request) long before the grace.
	body, _ := json.Marshal(localapi.DrainRequest{Reason: ReasonUpdateReboot, Grace: localapi.Duration(grace)})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", d.Socket)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://connector/v1/drain", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST /v1/drain answered %s", resp.Status)
	}
	return nil
}
