package console

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

var update = flag.Bool("update", false, "rewrite golden screens in testdata/")

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

type fakeStatus struct {
	mu     sync.Mutex
	st     localapi.Status
	err    error
	tokens []string
}

func (f *fakeStatus) Status(ctx context.Context) (localapi.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, f.err
}

func (f *fakeStatus) SubmitToken(ctx context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, token)
	f.st.State, f.st.Reason, f.st.Hint = state.Online.String(), "", ""
	return nil
}

type fakeNet struct{}

func (fakeNet) Links() ([]netinfo.Link, error) {
	return []netinfo.Link{{Name: "eth0", MAC: "00:50:56:a1:b2:c3", Up: true, Carrier: true,
		Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}}}, nil
}
func (fakeNet) DefaultGateway() (string, error) { return "192.0.2.1", nil }

func fixedProbes() Probes {
	return Probes{
		Data:   func(context.Context) string { return "ext4, persistent; 12.0 MiB of 1.9 GiB used (0%)" },
		Image:  func(context.Context) string { return "0.1.0, slot A" },
		Verity: func(context.Context) string { return "on, no corruption seen (root hash 3f9a1c0b7e2d...)" },
		NTP:    func(context.Context) string { return "synchronized" },
	}
}

func configuredRoot(t *testing.T) string {
	root := t.TempDir()
	s := settings.Settings{Interface: "eth0", Address: "192.0.2.10/24", Gateway: "192.0.2.1", DNS: "192.0.2.53",
		NTP: "192.0.2.123", Hostname: "vaultpam-dc1", ControlPlaneURL: "https://cp.example.com", ConnectorName: "dc1-connector-1"}
	if _, err := s.Write(root); err != nil {
		t.Fatal(err)
	}
	return root
}

// healthScreen renders the health screen for status st (and err) once
// every background source has reported.
func healthScreen(t *testing.T, st localapi.Status, err error) (*App, string) {
	t.Helper()
	return healthScreenSized(t, st, err, screen.Size{})
}

// healthScreenSized is healthScreen on a terminal of size sz.
func healthScreenSized(t *testing.T, st localapi.Status, err error, sz screen.Size) (*App, string) {
	t.Helper()
	_, upd := serveUpdater(t, baseImage())
	a := New(Env{Root: configuredRoot(t), TTY: "tty1", Connector: &fakeStatus{st: st, err: err}, Updater: upd, Net: fakeNet{},
		Now: func() time.Time { return now }, Probes: fixedProbes(), Size: func() screen.Size { return sz }})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a.ctx = ctx
	a.start()
	drain(t, a)
	return a, a.frame().String()
}

// drain runs posted work until every background source has reported.
func drain(t *testing.T, a *App) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		busy := false
		for _, v := range a.health.inflight {
			busy = busy || v
		}
		if !busy {
			return
		}
		select {
		case fn := <-a.posts:
			fn()
		case <-timeout:
			t.Fatalf("background work never finished: %v", a.health.inflight)
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(path, []byte(got), 0o644)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s (run with -update to create it): %v", path, err)
	}
	if got != string(want) {
		t.Errorf("screen %s differs (run with -update if intended)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestHealthStates(t *testing.T) {
	base := localapi.Status{Mode: localapi.ModeAutonomousRestart, DataDir: "/data", DataDurable: true,
		ConnectorID: "conn-7f3a", ConnectorName: "dc1-connector-1", ControlPlane: "https://cp.example.com", Version: "0.1.0",
		HeartbeatInterval: localapi.Duration(10 * time.Second)}
	online := base
	online.State, online.Since = state.Online.String(), now.Add(-2*time.Hour)
	online.LastHeartbeat, online.TunnelRTT, online.ActiveSessions = now.Add(-4*time.Second), localapi.Duration(12300*time.Microsecond), 3
	online.CertNotAfter = now.Add(30 * 24 * time.Hour)
	online.AllowedTargets = &localapi.TargetPolicy{All: true, Summary: "any private or public address; refused: loopback, link-local, this appliance's addresses"}

	offline := online
	offline.State, offline.Since, offline.ActiveSessions, offline.TunnelRTT = state.Reconnecting.String(), now.Add(-35*time.Second), 0, 0
	offline.LastHeartbeat = now.Add(-38 * time.Second)
	offline.Reason = "tunnel closed: dial tcp 203.0.113.7:443: connection refused"
	offline.Hint = "check that the control plane is reachable (D runs diagnostics)"

	guided := base
	guided.State, guided.Mode, guided.DataDurable = state.NeedsRecovery.String(), localapi.ModeGuidedRecovery, false
	guided.Reason = "no identity in /data after restart"

	revoked := base
	revoked.State = state.NeedsRecovery.String()
	revoked.Reason = "certificate revoked by the control plane"

	enrolling := base
	enrolling.State, enrolling.ConnectorID = state.Enrolling.String(), ""

	awaiting := base
	awaiting.State, awaiting.ConnectorID, awaiting.ConnectorName = state.AwaitingToken.String(), "", ""
	awaiting.Hint = "press R and type the enrolment token from the dashboard (Connectors -> Add Connector)"

	connecting := base
	connecting.State, connecting.Since = state.Connecting.String(), now.Add(-3*time.Second)
	connecting.CertNotAfter = now.Add(30 * 24 * time.Hour)

	draining := online
	draining.State, draining.Since, draining.ActiveSessions = state.Draining.String(), now.Add(-5*time.Second), 2
	draining.Reason = "shutting down: finishing 2 sessions, new sessions go to other connectors"

	for _, tc := range []struct {
		name string
		st   localapi.Status
		err  error
		want string
	}{
		{"health-awaiting-token", awaiting, nil, " Waiting for token"},
		{"health-connecting", connecting, nil, " Connecting "},
		{"health-draining", draining, nil, " Draining "},
		{"health-online", online, nil, " Online "},
		{"health-offline", offline, nil, "Offline (reconnecting)"},
		{"health-enrolling", enrolling, nil, "Enrolling"},
		{"health-needs-recovery-guided", guided, nil, "without a persistent DATA partition"},
		{"health-needs-recovery-revoked", revoked, nil, "Certificate revoked by the control plane"},
		{"health-no-connector", localapi.Status{}, errors.New("connector not reachable at /run/vaultpam/connector.sock: connection refused"), "Connector not running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := healthScreen(t, tc.st, tc.err)
			if !strings.Contains(got, tc.want) {
				t.Errorf("screen lacks %q:\n%s", tc.want, got)
			}
			golden(t, tc.name, got)
		})
	}
	// Every state the connector reports has its golden screen above.
	for _, st := range []string{state.AwaitingToken.String(), state.Enrolling.String(), state.Connecting.String(), state.Online.String(),
		state.Reconnecting.String(), state.NeedsRecovery.String(), state.Draining.String()} {
		name := "health-" + strings.ReplaceAll(st, "_", "-")
		switch st {
		case state.Reconnecting.String():
			name = "health-offline"
		case state.NeedsRecovery.String():
			name = "health-needs-recovery-guided"
		}
		if _, err := os.Stat(filepath.Join("testdata", name+".golden")); err != nil {
			t.Errorf("state %s has no golden health screen: %v", st, err)
		}
	}
}

// TestLayoutSizes: the screens use the terminal's real size, never less
// than 80×24: the bars span the width, the body is a centred column of at
// most 100 characters, the key help sits on the last row. A terminal
// smaller than 80×24 gets the 80×24 layout.
func TestLayoutSizes(t *testing.T) {
	st := localapi.Status{State: state.Online.String(), Since: now.Add(-2 * time.Hour), Mode: localapi.ModeAutonomousRestart,
		DataDir: "/data", DataDurable: true, ConnectorID: "conn-7f3a", ConnectorName: "dc1-connector-1",
		ControlPlane: "https://cp.example.com", Version: "0.1.0", LastHeartbeat: now.Add(-4 * time.Second),
		HeartbeatInterval: localapi.Duration(10 * time.Second), CertNotAfter: now.Add(30 * 24 * time.Hour),
		Reason: "tunnel up since the last restart of the control plane; heartbeats are answered within the interval"}
	for _, tc := range []struct {
		name     string
		term     screen.Size
		cols     int
		rows     int
		helpLine string
	}{
		{"layout-85x32", screen.Size{Cols: 85, Rows: 32}, 85, 32, " R re-enrol"},
		{"layout-120x33", screen.Size{Cols: 120, Rows: 33}, 120, 33, "           R re-enrol"},
		{"layout-small-70x20", screen.Size{Cols: 70, Rows: 20}, 80, 24, " R re-enrol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, got := healthScreenSized(t, st, nil, tc.term)
			if a.size != (screen.Size{Cols: tc.cols, Rows: tc.rows}) {
				t.Errorf("layout size for a %s terminal = %s, want %dx%d", tc.term, a.size, tc.cols, tc.rows)
			}
			lines := a.frame().Lines()
			if len(lines) != tc.rows {
				t.Fatalf("frame has %d rows, want %d", len(lines), tc.rows)
			}
			if n := len([]rune(lines[0].Text())); n != tc.cols {
				t.Errorf("title bar is %d wide, want %d", n, tc.cols)
			}
			if last := lines[tc.rows-1].Text(); !strings.HasPrefix(last, tc.helpLine) || len(last) != tc.cols {
				t.Errorf("last row = %q, want the key help across %d columns", last, tc.cols)
			}
			golden(t, tc.name, got)
		})
	}
}

func TestRecoveryAcceptsToken(t *testing.T) {
	st := localapi.Status{State: state.NeedsRecovery.String(), Mode: localapi.ModeGuidedRecovery, ConnectorID: "conn-7f3a",
		ConnectorName: "dc1-connector-1", Reason: "no identity in /data after restart"}
	a, _ := healthScreen(t, st, nil)
	fake := a.env.Connector.(*fakeStatus)
	a.env.EnrolTimeout = 10 * time.Second
	for _, r := range "wqbmx-5kwdb-qxsz8-dm9o6" {
		a.cur.key(a, screen.Key{Kind: screen.KeyRune, Rune: r})
	}
	a.cur.key(a, screen.Key{Kind: screen.KeyEnter})
	deadline := time.After(30 * time.Second)
	for !strings.Contains(a.frame().String(), "Done:") {
		select {
		case fn := <-a.posts:
			fn()
		case <-deadline:
			t.Fatalf("recovery never finished:\n%s", a.frame().String())
		}
	}
	if len(fake.tokens) != 1 || fake.tokens[0] != "WQBMX5KWDBQXSZ8DM906" {
		t.Errorf("tokens submitted = %d (%v), want the canonical recovery token once", len(fake.tokens), len(fake.tokens) == 1)
	}
	if s := a.frame().String(); strings.Contains(s, "WQBMX") {
		t.Errorf("token shown on screen:\n%s", s)
	}
}

// A probe that hangs (a stuck filesystem) leaves only its own line stale:
// the status still shows and the screen still answers keys.
func TestHealthNeverBlocksOnSlowProbe(t *testing.T) {
	st := localapi.Status{State: state.Online.String(), Mode: localapi.ModeAutonomousRestart, ConnectorName: "dc1-connector-1"}
	probes := fixedProbes()
	release := make(chan struct{})
	defer close(release)
	probes.Data = func(ctx context.Context) string {
		<-release
		return "late"
	}
	_, upd := serveUpdater(t, baseImage())
	a := New(Env{Root: configuredRoot(t), TTY: "tty1", Connector: &fakeStatus{st: st}, Updater: upd, Net: fakeNet{},
		Now: func() time.Time { return now }, Probes: probes})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.ctx = ctx
	a.start()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(a.frame().String(), "Online") || a.health.inflight["status"] {
		select {
		case fn := <-a.posts:
			fn()
		case <-deadline:
			t.Fatalf("status never shown while a probe hangs:\n%s", a.frame().String())
		}
	}
	s := a.frame().String()
	if !strings.Contains(s, "DATA partition        ...") {
		t.Errorf("the hanging probe's line is not marked pending:\n%s", s)
	}
	a.cur.key(a, screen.Key{Kind: screen.KeyRune, Rune: 'b'})
	if s := a.frame().String(); !strings.Contains(s, "Reboot the appliance?") {
		t.Errorf("keys not handled while a probe hangs:\n%s", s)
	}
}

type noGatewayNet struct{ fakeNet }

func (noGatewayNet) DefaultGateway() (string, error) { return "", nil }

// noAddressNet: the link is up but DHCP has not answered yet.
type noAddressNet struct{ noGatewayNet }

func (noAddressNet) Links() ([]netinfo.Link, error) {
	return []netinfo.Link{{Name: "eth0", MAC: "00:50:56:a1:b2:c3", Up: true, Carrier: true}}, nil
}

// TestHealthDHCPShowsWhatDHCPGave: with DHCP the screen shows the DNS
// servers the resolver got, and says plainly when DHCP sent no router or
// no DNS server instead of a bare "none" or "from DHCP".
func TestHealthDHCPShowsWhatDHCPGave(t *testing.T) {
	for _, tc := range []struct {
		name, dns, wantGW, wantDNS string
		net                        netinfo.Source
	}{
		{"router and dns", "10.0.2.3, 10.0.2.4", "192.0.2.1", "10.0.2.3, 10.0.2.4 (from DHCP)", fakeNet{}},
		{"neither", "none", "none: the DHCP server sent no router", "none: DHCP sent none, names will not resolve", noGatewayNet{}},
		{"no lease yet", "none", "none yet: waiting for a DHCP lease", "none yet: waiting for a DHCP lease", noAddressNet{}},
		{"resolver down", "unknown (systemd-resolved is not running)", "192.0.2.1", "from DHCP, unknown (systemd-resolved is not running)", fakeNet{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			s := settings.Settings{Interface: "eth0", DHCP: true, Hostname: "vaultpam-dc1",
				ControlPlaneURL: "https://cp.example.com", ConnectorName: "dc1-connector-1"}
			if _, err := s.Write(root); err != nil {
				t.Fatal(err)
			}
			p := fixedProbes()
			p.DNS = func(context.Context) string { return tc.dns }
			_, upd := serveUpdater(t, baseImage())
			a := New(Env{Root: root, TTY: "tty1", Connector: &fakeStatus{st: localapi.Status{State: state.Online.String(), Mode: localapi.ModeAutonomousRestart, ConnectorName: "dc1-connector-1"}}, Updater: upd, Net: tc.net,
				Now: func() time.Time { return now }, Probes: p})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a.ctx = ctx
			a.start()
			drain(t, a)
			screen := a.frame().String()
			for _, want := range []string{"Network (DHCP)", "Gateway               " + tc.wantGW, "DNS servers           " + tc.wantDNS} {
				if !strings.Contains(screen, want) {
					t.Errorf("screen lacks %q:\n%s", want, screen)
				}
			}
		})
	}
}

func TestResolverServers(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	os.WriteFile(conf, []byte("# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\n"+
		"nameserver 10.0.2.3\nnameserver 2001:db8::53\nsearch example.com\noptions edns0 trust-ad\n"), 0o644)
	if got, want := resolverServers(conf), "10.0.2.3, 2001:db8::53"; got != want {
		t.Errorf("resolverServers = %q, want %q", got, want)
	}
	os.WriteFile(conf, []byte("# no servers\nsearch .\n"), 0o644)
	if got := resolverServers(conf); got != "none" {
		t.Errorf("resolverServers with no nameserver line = %q, want none", got)
	}
	if got := resolverServers(filepath.Join(dir, "missing")); got != "unknown (systemd-resolved is not running)" {
		t.Errorf("resolverServers of a missing file = %q", got)
	}
}

// TestImageInfoSlot: the running slot comes from what the initramfs
// recorded (one UKI boots either slot), else from an older UKI's command
// line.
func TestImageInfoSlot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	os.MkdirAll(filepath.Join(root, "run/vaultpam-boot"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("IMAGE_VERSION=\"0.2.0\"\n"), 0o644)
	os.WriteFile(filepath.Join(root, "proc/cmdline"), []byte("root=/dev/mapper/vroot vaultpam.roothash=ab vaultpam.verity=0d6f2a4e-1b7c-4e8a-9c3d-5f6a7b8c9d0e\n"), 0o644)
	if got := imageInfo(root); got != "0.2.0, slot unknown" {
		t.Errorf("without a record: %q", got)
	}
	os.WriteFile(filepath.Join(root, "run/vaultpam-boot/slot"), []byte("B\n"), 0o644)
	if got := imageInfo(root); got != "0.2.0, slot B" {
		t.Errorf("with /run/vaultpam-boot/slot = B: %q", got)
	}
	os.Remove(filepath.Join(root, "run/vaultpam-boot/slot"))
	os.WriteFile(filepath.Join(root, "proc/cmdline"), []byte("vaultpam.slot=a\n"), 0o644)
	if got := imageInfo(root); got != "0.2.0, slot A" {
		t.Errorf("older UKI: %q", got)
	}
}

// TestHealthHelpFits: the key help fits 80 columns whatever the screen
// offers, starts with R, and shows U and O when they can do something.
func TestHealthHelpFits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		available bool
		good      bool
	}{{"plain", false, false}, {"update", true, false}, {"rollback", false, true}, {"both", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := &health{imgOK: true, img: baseImage()}
			if tc.available {
				h.img.Available = &localapi.Available{Version: "0.2.0", Source: "cdrom"}
			}
			if tc.good {
				h.img.Other = &localapi.SlotInfo{Slot: "B", Version: "0.0.9", State: "good"}
			}
			for _, width := range []int{79, 99, 119} {
				got := fitHelp(width, h.helpKeys())
				if len(got) > width || !strings.HasPrefix(got, "R re-enrol") {
					t.Errorf("fitHelp(%d) = %q (%d wide)", width, got, len(got))
				}
				for _, want := range []string{"D diag", "G ", "B reboot", "S "} {
					if !strings.Contains(got, want) {
						t.Errorf("fitHelp(%d) = %q, lacks %q", width, got, want)
					}
				}
				if strings.Contains(got, "U ") != tc.available || strings.Contains(got, "O ") != tc.good {
					t.Errorf("fitHelp(%d) = %q: U shown %v (want %v), O shown %v (want %v)", width, got,
						strings.Contains(got, "U "), tc.available, strings.Contains(got, "O "), tc.good)
				}
				if width == 119 && tc.name == "plain" && !strings.Contains(got, "G send support bundle") {
					t.Errorf("fitHelp(119) = %q, want the long labels", got)
				}
			}
		})
	}
}
