package console

import (
	"context"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// health caches what the health screen shows. Every source refreshes in
// the background; the screen draws whatever is cached, so a slow call only
// makes its own line stale.
type health struct {
	st      localapi.Status
	stErr   error
	stAt    time.Time
	links   []netinfo.Link
	gateway string
	set     settings.Settings
	data    string
	image   string
	verity  string
	ntp     string
	dns     string // the resolver's servers; see Probes.DNS
	// img is the updater's image status (update.go); imgErr its last
	// error, imgOK whether it ever answered (else the image line falls
	// back to /etc/os-release and no update key is offered).
	img    localapi.Image
	imgErr error
	imgOK  bool
	imgAt  time.Time // its last answer
	// note is a one-off answer to a key (why O cannot roll back, what U
	// started), shown above the key help until the next key.
	note string
	// window is update_window from /config/connector.yaml; windowBad
	// when it cannot be read.
	window    config.Window
	windowBad bool
	inflight  map[string]bool
	last      map[string]time.Time
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
	// Every 2 s: an install's progress and the CD-ROM's offer show soon.
	if due("updater", 2*time.Second) {
		goDo(a, func(ctx context.Context) imageResult {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			im, err := a.env.Updater.Status(ctx)
			return imageResult{im, err}
		}, func(r imageResult) {
			h.inflight["updater"] = false
			h.imgErr = r.err
			if r.err == nil {
				h.img, h.imgOK, h.imgAt = r.img, true, a.env.Now()
			}
		})
	}
	if due("net", 2*time.Second) {
		goDo(a, func(ctx context.Context) netResult {
			ls, _ := a.env.Net.Links()
			gw, _ := a.env.Net.DefaultGateway()
			w, bad := updateWindow(a.env.path("/" + settings.ConnectorYAML))
			return netResult{ls, gw, settings.Load(a.env.Root), w, bad}
		}, func(r netResult) {
			h.inflight["net"] = false
			h.links, h.gateway, h.set = r.links, r.gw, r.set
			h.window, h.windowBad = r.window, r.windowBad
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
	// The verity status comes through the helper, which systemd starts on
	// the first request (slow at boot): an inconclusive answer is asked
	// again soon.
	verityEvery := 30 * time.Second
	if strings.Contains(h.verity, "status unknown") {
		verityEvery = 5 * time.Second
	}
	probe("verity", verityEvery, p.Verity, &h.verity)
	probe("ntp", 10*time.Second, p.NTP, &h.ntp)
	probe("dns", 5*time.Second, p.DNS, &h.dns)
}

type statusResult struct {
	st  localapi.Status
	err error
}

type imageResult struct {
	img localapi.Image
	err error
}

type netResult struct {
	links []netinfo.Link
	gw    string
	set   settings.Settings
	// update_window (update.go)
	window    config.Window
	windowBad bool
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
