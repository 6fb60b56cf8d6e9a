// Package metrics serves the connector's metrics in the Prometheus text
// format (GET /metrics on the local API socket, and on metrics_listen when
// configured). Every value is read at scrape time from the connector's
// status and the tunnel's cumulative counters, so the metrics and the
// status JSON never disagree. The registry is the connector's own: no
// global default registry, no Go runtime or process collectors (the
// appliance's memory and CPU are the hypervisor's to watch, and those
// series would triple the page for nobody who operates a connector).
//
// The metrics, all named vaultpam_connector_* (connector/README.md,
// "Metrics", has the table):
//
//	info{version,image_version,image_slot,mode}   gauge 1
//	state{state}                                  gauge 1 for the current state, 0 for the others
//	tunnel_up                                     gauge
//	tunnel_connects_total, tunnel_reconnects_total, tunnel_connect_failures_total   counters
//	heartbeats_sent_total, heartbeats_missed_total                                 counters
//	heartbeat_rtt_seconds                         histogram
//	last_heartbeat_timestamp_seconds              gauge
//	sessions_active                               gauge
//	sessions_total{reason}                        counter (every end reason, refusals included)
//	session_bytes_total{direction="up"|"down"}    counter (towards the targets / back)
//	cert_expiry_timestamp_seconds                 gauge
//	clock_offset_seconds                          gauge (control plane minus this machine)
package metrics

import (
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
)

// Source returns the connector's status and the tunnel's counters at one
// instant; it is called on every scrape and must not block on the network.
type Source func() (localapi.Status, tunnel.CounterSnapshot)

// Handler serves the metrics read from src. It is safe for concurrent use.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(src))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// reasons are the session end reasons always exported (at 0 until one
// happens), so a dashboard's series exist from the start.
var reasons = []protocol.Reason{
	protocol.ReasonTargetClosed, protocol.ReasonClientClosed, protocol.ReasonConnectorOffline,
	protocol.ReasonDraining, protocol.ReasonDialFailed, protocol.ReasonDialTimeout, protocol.ReasonResolveFailed,
	protocol.ReasonNotAllowed, protocol.ReasonBadRequest, protocol.ReasonAborted, protocol.ReasonUpdateReboot,
	protocol.ReasonError,
}

// states are the connector's states exported in state{state}.
var states = []state.State{state.AwaitingToken, state.Enrolling, state.Connecting, state.Online,
	state.Reconnecting, state.NeedsRecovery, state.Draining}

const ns = "vaultpam_connector"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

type collector struct {
	src Source

	info, state, up                             *prometheus.Desc
	connects, reconnects, failures              *prometheus.Desc
	hbSent, hbMissed, rtt, lastHB               *prometheus.Desc
	active, sessions, bytes, certExpiry, offset *prometheus.Desc
}

func newCollector(src Source) *collector {
	return &collector{
		src:        src,
		info:       desc("info", "The connector's version, the appliance image's version and slot (empty elsewhere) and the runtime mode; always 1.", "version", "image_version", "image_slot", "mode"),
		state:      desc("state", "1 for the connector's current state (status JSON state), 0 for the others.", "state"),
		up:         desc("tunnel_up", "1 while the tunnel to the control plane is up (state online), else 0."),
		connects:   desc("tunnel_connects_total", "Tunnels to the control plane established since the connector started."),
		reconnects: desc("tunnel_reconnects_total", "Tunnels established after the first one: each is a reconnect after a loss."),
		failures:   desc("tunnel_connect_failures_total", "Connection attempts that did not bring the tunnel up (dial, TLS, refused hello)."),
		hbSent:     desc("heartbeats_sent_total", "Heartbeats sent to the control plane."),
		hbMissed:   desc("heartbeats_missed_total", "Heartbeats the control plane did not answer within one heartbeat interval."),
		rtt:        desc("heartbeat_rtt_seconds", "Round-trip time of heartbeats (sent to acknowledged)."),
		lastHB:     desc("last_heartbeat_timestamp_seconds", "When the control plane last acknowledged a heartbeat (Unix time); absent before the first."),
		active:     desc("sessions_active", "Sessions in flight through the tunnel."),
		sessions:   desc("sessions_total", "Sessions ended since the connector started, by end reason (refusals included).", "reason"),
		bytes:      desc("session_bytes_total", "Session bytes relayed, counted as they move: up = towards the targets, down = back.", "direction"),
		certExpiry: desc("cert_expiry_timestamp_seconds", "When the connector's client certificate expires (Unix time); absent before enrolment."),
		offset:     desc("clock_offset_seconds", "The control plane's clock minus this machine's, as last estimated over the tunnel (positive: this clock is behind); absent before the first estimate."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.state, c.up, c.connects, c.reconnects, c.failures, c.hbSent, c.hbMissed,
		c.rtt, c.lastHB, c.active, c.sessions, c.bytes, c.certExpiry, c.offset} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, n := c.src()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	stamp := func(d *prometheus.Desc, t time.Time) {
		if !t.IsZero() {
			gauge(d, float64(t.UnixNano())/1e9)
		}
	}
	var imgVersion, imgSlot string
	if st.Image != nil {
		imgVersion, imgSlot = st.Image.Version, st.Image.Slot
	}
	gauge(c.info, 1, st.Version, imgVersion, imgSlot, st.Mode)
	for _, s := range states {
		gauge(c.state, b2f(st.State == s.String()), s.String())
	}
	gauge(c.up, b2f(st.State == state.Online.String()))
	counter(c.connects, float64(n.TunnelsUp))
	counter(c.reconnects, float64(n.Reconnects()))
	counter(c.failures, float64(n.ConnectFailures))
	counter(c.hbSent, float64(n.HeartbeatsSent))
	counter(c.hbMissed, float64(n.HeartbeatsMissed))
	buckets := make(map[float64]uint64, len(tunnel.RTTBuckets))
	for i, ub := range tunnel.RTTBuckets {
		if i < len(n.RTTCumulative) {
			buckets[ub] = n.RTTCumulative[i]
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.rtt, n.RTTCount, n.RTTSum.Seconds(), buckets)
	stamp(c.lastHB, st.LastHeartbeat)
	gauge(c.active, float64(st.ActiveSessions))
	seen := make([]string, 0, len(reasons))
	for _, r := range reasons {
		counter(c.sessions, float64(n.Sessions[string(r)]), string(r))
		seen = append(seen, string(r))
	}
	for r, v := range n.Sessions { // a reason this build does not list
		if !slices.Contains(seen, r) {
			counter(c.sessions, float64(v), r)
		}
	}
	counter(c.bytes, float64(n.BytesUp), "up")
	counter(c.bytes, float64(n.BytesDown), "down")
	stamp(c.certExpiry, st.CertNotAfter)
	if st.ClockOffset != nil {
		gauge(c.offset, time.Duration(*st.ClockOffset).Seconds())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
