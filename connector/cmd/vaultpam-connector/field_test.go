package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/support"
	"github.com/vaultpam/appliance/lab"
)

// scrape GETs /metrics like `curl --unix-socket SOCK http://x/metrics`
// (or over TCP) and parses the page with Prometheus's text parser.
func scrape(t *testing.T, hc *http.Client, url string) (map[string]*dto.MetricFamily, int) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s: %s %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the metrics page does not parse: %v\n%s", err, body)
	}
	return fams, len(body)
}

func unixHTTP(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

// metric returns the value of name with labels (counter, gauge, or a
// histogram's count); -1 when absent.
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func echoServer(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s %s here: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln
}

// session opens a session to resource through the lab, echoes n bytes and
// ends it from the client side.
func session(t *testing.T, cp *lab.TestServer, resource string, n int) {
	t.Helper()
	s, err := cp.Lab.Connect(context.Background(), resource)
	if err != nil {
		t.Fatalf("Connect(%s) = %v", resource, err)
	}
	msg := bytes.Repeat([]byte("x"), n)
	go s.Write(msg)
	got := make([]byte, n)
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through the tunnel: %v", err)
	}
	s.CloseWrite()
	io.Copy(io.Discard, s)
	s.Close()
}

// The metrics page on the socket (and on metrics_listen) parses with
// Prometheus's parser, and the counters move with a real session through
// the tunnel: sessions by reason, bytes each way, heartbeats, RTT.
func TestMetricsMoveWithASession(t *testing.T) {
	cp := lab.NewTest(t, lab.WithHeartbeat(100*time.Millisecond))
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	echo := echoServer(t, "tcp", "127.0.0.1:0")
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	metricsAddr := free.Addr().String()
	free.Close()
	d := startDaemonWith(t, cp, "allowed_targets: [\"127.0.0.1\"]\nmetrics_listen: \""+metricsAddr+"\"\n", map[string]string{"PAM_ENROLMENT_TOKEN": tok})
	st := waitStatus(t, d.sock, "online", func(s localapi.Status) bool { return s.State == state.Online.String() })
	if err := cp.Authority.AddResource(lab.Resource{Name: "echo", Address: echo.Addr().String(), Connector: st.ConnectorID}); err != nil {
		t.Fatal(err)
	}
	hc := unixHTTP(d.sock)
	waitStatus(t, d.sock, "a heartbeat answered", func(localapi.Status) bool {
		f, _ := scrape(t, hc, "http://x/metrics")
		return metric(f, "vaultpam_connector_heartbeat_rtt_seconds") > 0
	})
	before, size := scrape(t, hc, "http://x/metrics")
	t.Logf("metrics page: %d bytes, %d families", size, len(before))

	session(t, cp, "echo", 100000)
	// The session is counted ended before its gauge goes down: wait for both.
	st = waitStatus(t, d.sock, "the session counted and closed", func(s localapi.Status) bool { return s.SessionsTotal == 1 && s.ActiveSessions == 0 })
	after, _ := scrape(t, hc, "http://x/metrics")

	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"vaultpam_connector_sessions_total", []string{"reason", "client_closed"}, 1},
		{"vaultpam_connector_session_bytes_total", []string{"direction", "up"}, 100000},
		{"vaultpam_connector_session_bytes_total", []string{"direction", "down"}, 100000},
	} {
		if d := metric(after, c.name, c.labels...) - metric(before, c.name, c.labels...); d < c.min {
			t.Errorf("%s%v moved by %v over the session, want at least %v", c.name, c.labels, d, c.min)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"vaultpam_connector_tunnel_up", nil, 1},
		{"vaultpam_connector_state", []string{"state", "online"}, 1},
		{"vaultpam_connector_tunnel_connects_total", nil, 1},
		{"vaultpam_connector_sessions_active", nil, 0},
		{"vaultpam_connector_info", []string{"version", version}, 1},
	} {
		if got := metric(after, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if metric(after, "vaultpam_connector_heartbeats_sent_total") < 1 || metric(after, "vaultpam_connector_cert_expiry_timestamp_seconds") < float64(time.Now().Unix()) {
		t.Errorf("heartbeats or certificate expiry missing from the page")
	}
	if st.BytesUp < 100000 || st.BytesDown < 100000 {
		t.Errorf("status bytes_up %d, bytes_down %d, want ≥ 100000 each", st.BytesUp, st.BytesDown)
	}

	// metrics_listen: the same page over TCP, and nothing else there.
	tcp, _ := scrape(t, http.DefaultClient, "http://"+metricsAddr+"/metrics")
	if metric(tcp, "vaultpam_connector_sessions_total", "reason", "client_closed") < 1 {
		t.Errorf("metrics_listen page lacks the session")
	}
	for _, path := range []string{"/v1/status", "/"} {
		resp, err := http.Get("http://" + metricsAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("GET %s on metrics_listen = %s, want 404 (only /metrics is served there)", path, resp.Status)
		}
	}
}

// The control plane's clock off by minutes shows as the connector's clock
// offset in its status (with the warning), its metrics and the lab's
// record of its heartbeats, with the sign that says which clock is behind.
func TestClockOffsetShowsEverywhere(t *testing.T) {
	for _, c := range []struct {
		shift time.Duration
		warn  string
	}{
		{2*time.Minute + 3*time.Second, "this machine's clock is 2m3s behind the control plane's: check NTP"},
		{-3 * time.Minute, "this machine's clock is 3m0s ahead of the control plane's: check NTP"},
	} {
		t.Run(c.shift.String(), func(t *testing.T) {
			cp := lab.NewTest(t, lab.WithHeartbeat(100*time.Millisecond), lab.WithNow(func() time.Time { return time.Now().Add(c.shift) }))
			tok, _ := cp.Authority.CreateToken("dc1", 0)
			d := startDaemon(t, cp, map[string]string{"PAM_ENROLMENT_TOKEN": tok})
			st := waitStatus(t, d.sock, "online with a clock offset", func(s localapi.Status) bool {
				return s.State == state.Online.String() && s.ClockOffset != nil
			})
			near := func(got time.Duration) bool { return (got - c.shift).Abs() < time.Second }
			if !near(time.Duration(*st.ClockOffset)) || st.ClockWarning != c.warn {
				t.Errorf("status clock_offset %v, clock_warning %q; want ≈%v, %q", time.Duration(*st.ClockOffset), st.ClockWarning, c.shift, c.warn)
			}
			var rec lab.Connector
			waitStatus(t, d.sock, "the lab to record the offset from a heartbeat", func(localapi.Status) bool {
				rec, _ = cp.Authority.Connector(st.ConnectorID)
				return rec.ClockOffset != nil
			})
			if !near(time.Duration(*rec.ClockOffset)) {
				t.Errorf("lab's record of the connector's clock offset = %v, want ≈%v", time.Duration(*rec.ClockOffset), c.shift)
			}
			fams, _ := scrape(t, unixHTTP(d.sock), "http://x/metrics")
			if got := metric(fams, "vaultpam_connector_clock_offset_seconds"); math.Abs(got-c.shift.Seconds()) > 1 {
				t.Errorf("clock_offset_seconds = %v, want ≈%v", got, c.shift.Seconds())
			}
		})
	}
}

// planted are secrets put where a careless bundle would pick them up.
type planted struct{ name, text string }

// A support bundle made by the CLI next to an in-process connector reaches
// the lab through the tunnel, decrypts with the lab's key, holds every
// part and none of the planted secrets, nor the connector's private key.
// With the tunnel down the CLI says so (exit 4) and --out still keeps an
// encrypted copy the lab's key opens.
func TestSupportBundleReachesTheLab(t *testing.T) {
	cp := lab.NewTest(t, lab.WithHeartbeat(200*time.Millisecond))
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	unused, _ := cp.Authority.CreateToken("dc2", 0)
	root := t.TempDir()
	// Secrets in places the connector's own checks do not look: a YAML
	// comment, a WireGuard unit, the journal.
	secrets := []planted{
		{"token in a config comment", protocol.FormatToken(unused)},
		{"token in the journal", strings.ToLower(unused)},
		{"WireGuard key", "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="},
		{"proxy password", "s3cr3t-Pr0xy!"},
		{"bearer token", "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.Zm9vYmFy"},
	}
	yaml := "# the token we used was " + secrets[0].text + "\nallowed_targets: [\"127.0.0.1\"]\n"
	netdir := filepath.Join(root, "network")
	os.MkdirAll(netdir, 0o700)
	os.WriteFile(filepath.Join(netdir, "10-eth0.network"), []byte("[Match]\nName=eth0\n[Network]\nAddress=192.0.2.10/24\n"), 0o600)
	os.WriteFile(filepath.Join(netdir, "30-wg0.netdev"), []byte("[NetDev]\nName=wg0\nKind=wireguard\n[WireGuard]\nPrivateKey="+secrets[2].text+"\n"), 0o600)
	os.WriteFile(filepath.Join(root, "resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644)
	d := startDaemonWith(t, cp, yaml, map[string]string{"PAM_ENROLMENT_TOKEN": tok})
	st := waitStatus(t, d.sock, "online with the lab's key", func(s localapi.Status) bool {
		return s.State == state.Online.String() && s.SupportRecipient != ""
	})
	if st.SupportRecipient != cp.Authority.SupportRecipient() {
		t.Fatalf("status support_recipient %q, want the lab's %q", st.SupportRecipient, cp.Authority.SupportRecipient())
	}
	journal := "2026-11-28T14:05:08+0000 vaultpam-connector[1]: PAM_ENROLMENT_TOKEN=" + secrets[1].text + "\n" +
		"2026-11-28T14:05:09+0000 vaultpam-connector[1]: proxy http://svc:" + secrets[3].text + "@proxy.internal:3128 refused\n" +
		"2026-11-28T14:05:10+0000 curl[2]: Authorization: Bearer " + secrets[4].text + "\n" +
		"2026-11-28T14:05:11+0000 vaultpam-connector[1]: tunnel state state=online\n"
	env := func(out string, args ...string) (int, string, string) {
		getenv, _ := mapEnv(map[string]string{"PAM_AGENT_SOCKET": d.sock, "PAM_AGENT_CONFIG": filepath.Join(d.dir, "connector.yaml"),
			"PAM_AGENT_DATA_DIR": filepath.Join(d.dir, "data"), "PAM_UPDATER_SOCKET": filepath.Join(root, "no-updater.sock")})
		var stdout, stderr syncBuf
		code := Main(context.Background(), Env{Stdout: &stdout, Stderr: &stderr, Getenv: getenv,
			Args: append([]string{"support-bundle", "--out", out}, args...),
			Support: func(o *support.Options) {
				o.NetworkDir, o.ResolvConf = netdir, filepath.Join(root, "resolv.conf")
				o.OSRelease, o.Cmdline = filepath.Join(root, "os-release"), filepath.Join(root, "cmdline")
				o.Run = func(_ context.Context, name string, args ...string) ([]byte, error) {
					if name == "journalctl" {
						return []byte(journal), nil
					}
					return []byte(name + " " + strings.Join(args, " ") + ": output\n"), nil
				}
			}})
		return code, stdout.String(), stderr.String()
	}

	start := time.Now()
	code, stdout, stderr := env(filepath.Join(root, "copy.age"), "--json")
	took := time.Since(start)
	var res supportResult
	if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil || !res.Sent || res.ID == "" {
		t.Fatalf("support-bundle = %d, %+v (%v)\n%s\n%s", code, res, err, stdout, stderr)
	}
	t.Logf("support bundle %s: %d bytes encrypted, %d parts, %d redacted, collected and encrypted in %d ms, sent in %v in all",
		res.ID, res.Size, res.Parts, res.Redacted, res.TookMS, took.Round(time.Millisecond))
	list, err := lab.ListBundles(cp.StateDir)
	if err != nil || len(list) != 1 || list[0].ID != res.ID || list[0].ConnectorID != st.ConnectorID || list[0].Size != int64(res.Size) {
		t.Fatalf("lab bundles = %+v, %v; want %s from %s", list, err, res.ID, st.ConnectorID)
	}
	b, err := lab.OpenBundle(cp.StateDir, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]string{}
	for _, p := range b.Parts {
		parts[p.Name] = string(p.Data)
	}
	for name, want := range map[string]string{
		"status.json":                    `"state": "online"`,
		"diagnostics.txt":                "ok   tls  TLS 1.3 with",
		"config/connector.yaml":          "connector_name: dc1",
		"network/units/10-eth0.network":  "Address=192.0.2.10/24",
		"network/units/30-wg0.netdev":    "PrivateKey=[REDACTED]",
		"network/resolv.conf":            "nameserver 192.0.2.53",
		"network/addresses.txt":          "ip address show: output",
		"journal/vaultpam-connector.log": "tunnel state state=online",
		"journal/kernel.log":             "",
		"image/status.json":              "the image updater does not answer",
		"verity/veritysetup-status.txt":  "veritysetup status vroot: output",
	} {
		got, ok := parts[name]
		if !ok || !strings.Contains(got, want) {
			t.Errorf("part %s = %q (present %v), want it to hold %q", name, got, ok, want)
		}
	}
	if b.Manifest.ConnectorID != st.ConnectorID || b.Manifest.Version != version {
		t.Errorf("manifest = %+v", b.Manifest)
	}
	// The connector's own private key, read here from its identity.
	id, err := (&identity.Dir{Path: filepath.Join(d.dir, "data")}).Load()
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(id.Key)
	keyLines := strings.Split(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "\n")[1:3]
	canon := strings.ToUpper(unused)
	for _, p := range append(b.Parts, support.Part{Name: "manifest", Data: mustJSON(b.Manifest)}) {
		text := string(p.Data)
		for _, s := range secrets {
			if strings.Contains(text, s.text) {
				t.Errorf("part %s holds the %s", p.Name, s.name)
			}
		}
		if strings.Contains(strings.NewReplacer("-", "", " ", "").Replace(strings.ToUpper(text)), canon) {
			t.Errorf("part %s holds the unused token in some spelling", p.Name)
		}
		for _, l := range keyLines {
			if strings.Contains(text, l) {
				t.Errorf("part %s holds the connector's private key", p.Name)
			}
		}
	}

	// The tunnel down: not sent, exit 4, the hint, and the --out copy.
	cp.Stop()
	waitStatus(t, d.sock, "offline", func(s localapi.Status) bool { return s.State != state.Online.String() })
	out := filepath.Join(root, "offline.age")
	code, _, stderr = env(out)
	if code != exitNotSent || !strings.Contains(stderr, "the tunnel to the control plane is down") || !strings.Contains(stderr, "hint: run the diagnostics") {
		t.Fatalf("support-bundle with the tunnel down = %d\n%s", code, stderr)
	}
	key, _ := os.ReadFile(filepath.Join(cp.StateDir, lab.SupportKeyFile))
	ident, err := age.ParseX25519Identity(strings.TrimSpace(string(key)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatalf("--out with the tunnel down: %v", err)
	}
	defer f.Close()
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o600 {
		t.Errorf("--out file mode %v, want 0600", fi.Mode().Perm())
	}
	if ob, err := support.Open(f, ident); err != nil || len(ob.Parts) != len(b.Parts) {
		t.Errorf("the offline copy: %v, %d parts", err, len(ob.Parts))
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// The control plane reached over IPv6 (an IPv6 literal URL: enrolment,
// tunnel), and a session through the tunnel to an IPv6 target.
func TestIPv6ControlPlaneAndTarget(t *testing.T) {
	probe, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	probe.Close()
	cp := lab.NewTest(t, lab.WithListen("[::1]:0"), lab.WithHeartbeat(200*time.Millisecond))
	if !strings.HasPrefix(cp.URL(), "https://[::1]:") {
		t.Fatalf("lab URL %s, want https://[::1]:PORT", cp.URL())
	}
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	echo := echoServer(t, "tcp6", "[::1]:0")
	d := startDaemonWith(t, cp, "allowed_targets: [\"::1\"]\n", map[string]string{"PAM_ENROLMENT_TOKEN": tok})
	st := waitStatus(t, d.sock, "online over IPv6", func(s localapi.Status) bool { return s.State == state.Online.String() })
	if err := cp.Authority.AddResource(lab.Resource{Name: "v6", Address: echo.Addr().String(), Connector: st.ConnectorID}); err != nil {
		t.Fatal(err)
	}
	session(t, cp, "v6", 5000)
	if c, _ := cp.Lab.Broker.Connector(st.ConnectorID); c.Status != "online" {
		t.Errorf("broker status %q", c.Status)
	}
	diag := func() string {
		getenv, _ := mapEnv(map[string]string{"PAM_AGENT_CONFIG": filepath.Join(d.dir, "connector.yaml")})
		var out, errb syncBuf
		if code := Main(context.Background(), Env{Stdout: &out, Stderr: &errb, Getenv: getenv, Args: []string{"diagnose"}}); code != 0 {
			t.Errorf("diagnose = %d\n%s%s", code, out.String(), errb.String())
		}
		return out.String()
	}()
	if !strings.Contains(diag, "ok   dns  ::1 is an address") || !strings.Contains(diag, "ok   tcp  TCP to [::1]:") || !strings.Contains(diag, "ok   tls") {
		t.Errorf("diagnose over IPv6:\n%s", diag)
	}
}
