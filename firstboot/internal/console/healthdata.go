package console

import (
	"context"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// health caches what the health screen shows. Every source refreshes in
// the background; the screen draws whatever is cached, so a slow call only
// makes its own line stale.
type health struct {
	st       localapi.Status
	stErr    error
	stAt     time.Time
	links    []netinfo.Link
	gateway  string
	set      settings.Settings
	data     string
	image    string
	verity   string
	ntp      string
	dns      string // the resolver's servers; see Probes.DNS
	inflight map[string]bool
	last     map[string]time.Time
	// dismissed: the operator left the needs-recovery screen with Esc;
	// show the health screen until the state changes.
	dismissed string
	recovery  *enrolView // the needs-recovery screen's token input
}

// refresh starts every source that is due and not already running.
func (h *health) refresh(a *App) {
	now := time.Now()
	due := func(name string, every time.Duration) bool {
		if h.inflight[name] || now.Sub(h.last[name]) < every {
			return false
		}
		h.inflight[name], h.last[name] = true, now
		return true
	}
	if due("status", time.Second) {
		goDo(a, func(ctx context.Context) statusResult {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			st, err := a.env.Connector.Status(ctx)
			return statusResult{st, err}
		}, func(r statusResult) {
			h.inflight["status"] = false
			h.st, h.stErr = r.st, r.err
			if r.err == nil {
				h.stAt = a.env.Now()
			}
		})
	}
	if due("net", 2*time.Second) {
		goDo(a, func(ctx context.Context) netResult {
			ls, _ := a.env.Net.Links()
			gw, _ := a.env.Net.DefaultGateway()
			return netResult{ls, gw, settings.Load(a.env.Root)}
		}, func(r netResult) {
			h.inflight["net"] = false
			h.links, h.gateway, h.set = r.links, r.gw, r.set
		})
	}
	probe := func(name string, every time.Duration, fn func(context.Context) string, dst *string) {
		if !due(name, every) {
			return
		}
		goDo(a, func(ctx context.Context) string {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return fn(ctx)
		}, func(v string) { h.inflight[name] = false; *dst = v })
	}
	p := a.probes
	probe("data", 5*time.Second, p.Data, &h.data)
	probe("image", time.Hour, p.Image, &h.image)
	probe("verity", 30*time.Second, p.Verity, &h.verity)
	probe("ntp", 10*time.Second, p.NTP, &h.ntp)
	probe("dns", 5*time.Second, p.DNS, &h.dns)
}

type statusResult struct {
	st  localapi.Status
	err error
}

type netResult struct {
	links []netinfo.Link
	gw    string
	set   settings.Settings
}

// showHealth shows the health screen (or the needs-recovery screen when the
// connector needs recovery).
func (a *App) showHealth() {
	if a.health == nil {
		a.health = &health{inflight: map[string]bool{}, last: map[string]time.Time{}}
	}
	if r := a.health.recovery; r != nil && r.phase != 1 {
		a.health.recovery = nil
	}
	a.show(&healthView{})
	a.health.refresh(a)
}
