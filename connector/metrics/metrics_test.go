package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/tunnel"
)

// scrape parses a metrics page with Prometheus's own text parser.
func scrape(t testing.TB, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the metrics page does not parse: %v\n%s", err, body)
	}
	return fams
}

func TestPage(t *testing.T) {
	off := localapi.Duration(-2*time.Minute - 3*time.Second)
	st := localapi.Status{State: "online", Version: "0.2.0", Mode: localapi.ModeAutonomousRestart, ActiveSessions: 2,
		CertNotAfter: time.Unix(1800000000, 0), LastHeartbeat: time.Unix(1700000000, 500e6), ClockOffset: &off,
		Image: &localapi.Image{Version: "0.2.0", Slot: "B"}}
	n := tunnel.CounterSnapshot{TunnelsUp: 3, ConnectFailures: 4, HeartbeatsSent: 10, HeartbeatsMissed: 1,
		BytesUp: 100, BytesDown: 2000, Sessions: map[string]uint64{"target_closed": 5, "not_allowed": 1, "future_reason": 2}, SessionsTotal: 8,
		RTTCumulative: make([]uint64, len(tunnel.RTTBuckets)), RTTSum: 30 * time.Millisecond, RTTCount: 10}
	for i := range n.RTTCumulative {
		n.RTTCumulative[i] = 10
	}
	rec := httptest.NewRecorder()
	Handler(func() (localapi.Status, tunnel.CounterSnapshot) { return st, n }).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	fams := scrape(t, rec.Body.String())

	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok {
			t.Fatalf("no %s in the page", name)
		}
	next:
		for _, m := range f.Metric {
			for _, lp := range m.Label {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.Counter.GetValue()
			case dto.MetricType_GAUGE:
				return m.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vaultpam_connector_info", map[string]string{"version": "0.2.0", "image_version": "0.2.0", "image_slot": "B", "mode": "autonomous_restart"}, 1},
		{"vaultpam_connector_state", map[string]string{"state": "online"}, 1},
		{"vaultpam_connector_state", map[string]string{"state": "reconnecting"}, 0},
		{"vaultpam_connector_tunnel_up", nil, 1},
		{"vaultpam_connector_tunnel_connects_total", nil, 3},
		{"vaultpam_connector_tunnel_reconnects_total", nil, 2},
		{"vaultpam_connector_tunnel_connect_failures_total", nil, 4},
		{"vaultpam_connector_heartbeats_sent_total", nil, 10},
		{"vaultpam_connector_heartbeats_missed_total", nil, 1},
		{"vaultpam_connector_heartbeat_rtt_seconds", nil, 10},
		{"vaultpam_connector_last_heartbeat_timestamp_seconds", nil, 1700000000.5},
		{"vaultpam_connector_sessions_active", nil, 2},
		{"vaultpam_connector_sessions_total", map[string]string{"reason": "target_closed"}, 5},
		{"vaultpam_connector_sessions_total", map[string]string{"reason": "dial_failed"}, 0},
		{"vaultpam_connector_sessions_total", map[string]string{"reason": "future_reason"}, 2},
		{"vaultpam_connector_session_bytes_total", map[string]string{"direction": "up"}, 100},
		{"vaultpam_connector_session_bytes_total", map[string]string{"direction": "down"}, 2000},
		{"vaultpam_connector_cert_expiry_timestamp_seconds", nil, 1800000000},
		{"vaultpam_connector_clock_offset_seconds", nil, -123},
	} {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for name := range fams {
		if len(name) < 19 || name[:19] != "vaultpam_connector_" {
			t.Errorf("metric %s is not the connector's (no Go runtime or process collectors)", name)
		}
	}

	// Before enrolment: no certificate expiry, no clock, no heartbeat.
	rec = httptest.NewRecorder()
	Handler(func() (localapi.Status, tunnel.CounterSnapshot) {
		return localapi.Status{State: "awaiting_token"}, tunnel.CounterSnapshot{}
	}).
		ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	fams = scrape(t, rec.Body.String())
	for _, absent := range []string{"vaultpam_connector_cert_expiry_timestamp_seconds", "vaultpam_connector_clock_offset_seconds", "vaultpam_connector_last_heartbeat_timestamp_seconds"} {
		if _, ok := fams[absent]; ok {
			t.Errorf("%s present before it is known", absent)
		}
	}
}
