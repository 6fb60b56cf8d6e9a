package privileged

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// fakeSystem stands in for the commands, the clock and the hostname.
type fakeSystem struct {
	mu       sync.Mutex
	calls    []string
	out      map[string][]byte // command line → standard output
	fail     map[string]error  // command line → error
	now      time.Time
	slept    []time.Duration
	hostname string
}

func (f *fakeSystem) Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := strings.Join(append([]string{name}, args...), " ")
	f.calls = append(f.calls, line)
	return f.out[line], f.fail[line]
}

func (f *fakeSystem) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeSystem) host() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hostname
}

func (f *fakeSystem) waits() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.slept...)
}

func (f *fakeSystem) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// lockedBuffer is the helper's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type fixture struct {
	root   string
	socket string
	sys    *fakeSystem
	log    *lockedBuffer
	client *Client
	raw    *http.Client // for requests the Client cannot make
	srv    *Server
}

// newFixture serves a real Server on a Unix socket in a temp dir, over a
// temp root with an empty /config.
func newFixture(t *testing.T, opts ...func(*Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{root: filepath.Join(dir, "root"), socket: filepath.Join(dir, "helper.sock"), log: &lockedBuffer{},
		sys: &fakeSystem{out: map[string][]byte{}, fail: map[string]error{}, now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}}
	if err := os.MkdirAll(filepath.Join(f.root, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Root, cfg.Run, cfg.Log = f.root, f.sys, f.log
	cfg.Now = func() time.Time {
		f.sys.mu.Lock()
		defer f.sys.mu.Unlock()
		return f.sys.now
	}
	cfg.Sleep = func(ctx context.Context, d time.Duration) error {
		f.sys.mu.Lock()
		defer f.sys.mu.Unlock()
		f.sys.slept = append(f.sys.slept, d)
		f.sys.now = f.sys.now.Add(d)
		return nil
	}
	cfg.SetHostname = func(name string) error {
		f.sys.mu.Lock()
		defer f.sys.mu.Unlock()
		f.sys.hostname = name
		return nil
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	l, err := Listen(f.socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	f.client = NewClient(f.socket)
	f.raw = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", f.socket)
	}}}
	return f
}

// send sends body to path as it is, and returns the status and the answer.
func (f *fixture) send(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://helper"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// configFiles lists what is under root/config.
func (f *fixture) configFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	filepath.Walk(filepath.Join(f.root, "config"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(f.root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func goodSettings() settings.Settings {
	return settings.Settings{Interface: "eth0", Address: "192.0.2.10/24", Gateway: "192.0.2.1", DNS: "192.0.2.53",
		NTP: "ntp.example.com", Hostname: "vaultpam-dc1", ControlPlaneURL: "https://cp.example.com", ConnectorName: "dc1-connector-1"}
}

// TestRefusesOutsideTheList: a path that is not one of the requests, or
// the wrong method, is refused, runs nothing and writes nothing.
func TestRefusesOutsideTheList(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"POST", "/v1/shell", 404, CodeUnknownRequest},
		{"POST", "/v1/power/halt", 404, CodeUnknownRequest},
		{"POST", "/v1/power/REBOOT", 404, CodeUnknownRequest},
		{"POST", "/v1/settings/../power/reboot", 404, CodeUnknownRequest},
		{"GET", "/", 404, CodeUnknownRequest},
		{"POST", "/v2/settings", 404, CodeUnknownRequest},
		{"GET", "/v1/settings", 405, CodeMethod},
		{"GET", "/v1/power/reboot", 405, CodeMethod},
		{"POST", "/v1/verity/status", 405, CodeMethod},
		{"DELETE", "/v1/connector/restart", 405, CodeMethod},
	} {
		status, body := f.send(t, tc.method, tc.path, `{"interface":"eth0"}`)
		if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
			t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.path, status, body, tc.status, tc.code)
		}
	}
	if got := f.sys.commands(); len(got) != 0 {
		t.Errorf("commands ran for refused requests: %q", got)
	}
	if got := f.configFiles(t); len(got) != 0 {
		t.Errorf("files written for refused requests: %q", got)
	}
	if n := strings.Count(f.log.String(), "refused ("); n != 10 {
		t.Errorf("log has %d refusals, want 10:\n%s", n, f.log)
	}
}

// TestWriteSettings: valid settings land in /config, keys the console
// does not own are kept, nothing else runs.
func TestWriteSettings(t *testing.T) {
	f := newFixture(t)
	yaml := filepath.Join(f.root, settings.ConnectorYAML)
	if err := os.WriteFile(yaml, []byte("allowed_targets: [\"10.20.0.0/16\"]\nconnector_name: old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := f.client.WriteSettings(context.Background(), goodSettings())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{settings.NetworkUnit, settings.HostnameFile, settings.TimesyncdFile, settings.ConnectorYAML}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("files written (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(goodSettings(), settings.Load(f.root)); diff != "" {
		t.Errorf("settings read back (-want +got):\n%s", diff)
	}
	if b, _ := os.ReadFile(yaml); !strings.Contains(string(b), "10.20.0.0/16") {
		t.Errorf("connector.yaml lost allowed_targets:\n%s", b)
	}
	if got := f.sys.commands(); len(got) != 0 {
		t.Errorf("writing settings ran %q", got)
	}
}

// TestRefusesInvalidSettings: the privileged side validates again, with
// the same package as the console, and refuses secrets by field name and
// by value. Nothing reaches /config.
func TestRefusesInvalidSettings(t *testing.T) {
	const token = "WQBMX5KWDBQXSZ8DM906"
	good := `"interface":"eth0","dhcp":true,"hostname":"vaultpam-dc1","control_plane_url":"https://cp.example.com","connector_name":"dc1"`
	for _, tc := range []struct {
		name, body string
		code, want string
	}{
		{"token field", `{` + good + `,"token":"` + token + `"}`, CodeSecret, `field "token" refused`},
		{"enrolment_token field", `{` + good + `,"enrolment_token":"x"}`, CodeSecret, `field "enrolment_token" refused`},
		{"proxy password field", `{` + good + `,"proxy_password":"x"}`, CodeSecret, `field "proxy_password" refused`},
		{"unknown field", `{` + good + `,"exec_start":"/bin/sh"}`, CodeBadRequest, `settings have no field "exec_start"`},
		{"token as hostname", `{"interface":"eth0","dhcp":true,"hostname":"` + token + `","control_plane_url":"https://cp.example.com","connector_name":"dc1"}`, CodeSecret, "hostname looks like an enrolment token"},
		{"token as name, grouped", `{"interface":"eth0","dhcp":true,"hostname":"h","control_plane_url":"https://cp.example.com","connector_name":"wqbmx-5kwdb-qxsz8-dm9o6"}`, CodeSecret, "connector name looks like an enrolment token"},
		{"unit injection via interface", `{"interface":"eth0\n[Network]\nAddress=203.0.113.9/24","dhcp":true,"hostname":"h","control_plane_url":"https://cp.example.com","connector_name":"dc1"}`, CodeInvalid, "is not a network interface name"},
		{"bad address", `{"interface":"eth0","address":"192.0.2.300/24","gateway":"192.0.2.1","dns":"192.0.2.53","hostname":"h","control_plane_url":"https://cp.example.com","connector_name":"dc1"}`, CodeInvalid, "is not an IP address with prefix"},
		{"http control plane", `{"interface":"eth0","dhcp":true,"hostname":"h","control_plane_url":"http://cp.example.com","connector_name":"dc1"}`, CodeInvalid, `scheme "http" is not allowed`},
		{"proxy with credentials", `{` + good + `,"proxy":"http://u:p@proxy:3128"}`, CodeInvalid, "credentials in the URL are not supported"},
		{"wrong type", `{"interface":"eth0","dhcp":"yes"}`, CodeBadRequest, "does not decode"},
		{"not an object", `["eth0"]`, CodeBadRequest, "not a JSON object"},
		{"too large", `{"hostname":"` + strings.Repeat("a", MaxBody) + `"}`, CodeBadRequest, "larger than 98304 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			status, body := f.send(t, "POST", "/v1/settings", tc.body)
			var eb ErrorBody
			json.Unmarshal([]byte(body), &eb)
			if status/100 != 4 || eb.Code != tc.code || !strings.Contains(eb.Message, tc.want) {
				t.Errorf("answer = %d %s, want 4xx %s with %q", status, body, tc.code, tc.want)
			}
			if got := f.configFiles(t); len(got) != 0 {
				t.Errorf("refused settings wrote %q", got)
			}
			if strings.Contains(f.log.String(), token) || strings.Contains(strings.ToLower(f.log.String()), "wqbmx") {
				t.Errorf("the log holds the token:\n%s", f.log)
			}
		})
	}
}

// TestApplyNetwork sets the hostname /config holds, then restarts
// networkd and timesyncd; a hostname file that does not validate stops it
// before anything runs.
func TestApplyNetwork(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.client.WriteSettings(ctx, goodSettings()); err != nil {
		t.Fatal(err)
	}
	if err := f.client.ApplyNetwork(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.sys.host(); got != "vaultpam-dc1" {
		t.Errorf("hostname set to %q, want vaultpam-dc1", got)
	}
	want := []string{"systemctl restart systemd-networkd", "systemctl restart systemd-timesyncd"}
	if diff := cmp.Diff(want, f.sys.commands()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}

	os.WriteFile(filepath.Join(f.root, settings.HostnameFile), []byte("bad name;reboot\n"), 0o644)
	err := f.client.ApplyNetwork(ctx)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalid || !strings.Contains(e.Message, "/config/hostname") {
		t.Errorf("ApplyNetwork with a bad hostname file = %v, want an invalid /config/hostname", err)
	}
	if len(f.sys.commands()) != 2 || f.sys.host() != "vaultpam-dc1" {
		t.Errorf("a bad hostname file still ran something: %q, hostname %q", f.sys.commands(), f.sys.host())
	}
}

// TestRestartSpacing: a second restart sooner than RestartSpacing waits
// for the rest of it (systemd refuses a unit restarted too often).
func TestRestartSpacing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for range 2 {
		if err := f.client.RestartConnector(ctx); err != nil {
			t.Fatal(err)
		}
		f.sys.advance(time.Second)
	}
	if diff := cmp.Diff([]time.Duration{2 * time.Second}, f.sys.waits()); diff != "" {
		t.Errorf("waits before restarting (-want +got):\n%s", diff)
	}
	f.sys.advance(time.Minute)
	if err := f.client.RestartConnector(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.sys.waits(); len(got) != 1 {
		t.Errorf("a restart a minute later waited: %v", got)
	}
	if got := f.sys.commands(); len(got) != 3 || got[2] != "systemctl restart vaultpam-connector" {
		t.Errorf("commands = %q, want three connector restarts", got)
	}
}

// TestPowerRateLimited: after a reboot or power-off went ahead, power
// requests are refused for PowerHold; a failed one does not count.
func TestPowerRateLimited(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.sys.fail["systemctl reboot"] = errors.New("systemctl reboot: Failed to connect to bus")
	if err := f.client.Reboot(ctx); err == nil || !strings.Contains(err.Error(), "Failed to connect to bus") {
		t.Fatalf("Reboot with a failing systemctl = %v, want its error", err)
	}
	delete(f.sys.fail, "systemctl reboot")
	if err := f.client.Reboot(ctx); err != nil {
		t.Fatalf("Reboot after a failed one: %v", err)
	}
	f.sys.advance(30 * time.Second)
	for _, do := range []func(context.Context) error{f.client.Reboot, f.client.PowerOff} {
		err := do(ctx)
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || !strings.Contains(e.Message, "a reboot was requested 30s ago") {
			t.Errorf("power request 30 s after a reboot = %v, want refused", err)
		}
	}
	f.sys.advance(2 * time.Minute)
	if err := f.client.PowerOff(ctx); err != nil {
		t.Errorf("PowerOff after the hold: %v", err)
	}
	want := []string{"systemctl reboot", "systemctl reboot", "systemctl poweroff"}
	if diff := cmp.Diff(want, f.sys.commands()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
}

// TestRawReads: the OVF environment and the verity status come back as
// the commands printed them, unparsed, within their limits.
func TestRawReads(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const rpc = "vmware-rpctool info-get guestinfo.ovfEnv"
	if _, err := f.client.GuestInfo(ctx); !isCode(err, CodeNotFound) {
		t.Errorf("GuestInfo with nothing set = %v, want %s", err, CodeNotFound)
	}
	doc := []byte("<not even <xml \x00\xff")
	f.sys.out[rpc] = doc
	if got, err := f.client.GuestInfo(ctx); err != nil || !bytes.Equal(got, doc) {
		t.Errorf("GuestInfo = %q, %v; want the bytes as they are", got, err)
	}
	f.sys.out[rpc] = bytes.Repeat([]byte("x"), MaxGuestInfo+1)
	if _, err := f.client.GuestInfo(ctx); !isCode(err, CodeTooLarge) {
		t.Errorf("GuestInfo over the limit = %v, want %s", err, CodeTooLarge)
	}
	f.sys.fail[rpc] = fmt.Errorf("vmware-rpctool: not running in a VMware VM")
	if _, err := f.client.GuestInfo(ctx); !isCode(err, CodeNotFound) {
		t.Errorf("GuestInfo outside VMware = %v, want %s", err, CodeNotFound)
	}
	f.sys.out["dmsetup status --target verity"] = []byte("vroot: 0 180000 verity V\n")
	if got, err := f.client.VerityStatus(ctx); err != nil || string(got) != "vroot: 0 180000 verity V\n" {
		t.Errorf("VerityStatus = %q, %v", got, err)
	}
}

func isCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// TestLogNamesTheCaller: every request is logged with the caller's pid and
// uid (SO_PEERCRED) and its outcome.
func TestLogNamesTheCaller(t *testing.T) {
	f := newFixture(t)
	if err := f.client.RestartConnector(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`vaultpam-console helper: POST "connector/restart" from pid %d uid %d: ok: vaultpam-connector restarted`, os.Getpid(), os.Getuid())
	if !strings.Contains(f.log.String(), want) {
		t.Errorf("log = %q, want a line %q", f.log, want)
	}
}

func TestEveryEndpointHasAHandler(t *testing.T) {
	f := newFixture(t)
	for _, e := range Endpoints() {
		status, body := f.send(t, e.Method, e.Path(), "{}")
		if strings.Contains(body, "has no handler") || status == http.StatusNotFound && strings.Contains(body, CodeUnknownRequest) {
			t.Errorf("%s %s = %d %s", e.Method, e.Path(), status, body)
		}
	}
}
