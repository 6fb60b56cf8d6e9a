package console

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/fakeconnector"
	"github.com/vaultpam/appliance/firstboot/internal/fakeupdater"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// socketDir is a temp directory with a short path: a Unix socket's path
// is limited to 108 bytes, which t.TempDir() under a long test name
// exceeds.
func socketDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vpc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// serveUpdater serves a fake updater reporting im on a real Unix socket
// and returns it with the console's client for it.
func serveUpdater(t *testing.T, im localapi.Image) (*fakeupdater.Updater, *localapi.UpdaterClient) {
	t.Helper()
	u := fakeupdater.New(im)
	path := filepath.Join(socketDir(t), "update.sock")
	fakeupdater.Serve(t, u, path)
	return u, localapi.NewUpdaterClient(path)
}

// baseImage: 0.1.0 running in slot A, slot B empty, no update so far.
func baseImage() localapi.Image {
	return localapi.Image{Version: "0.1.0", Slot: "A", Other: &localapi.SlotInfo{Slot: "B", State: "empty"}, TrustedRootVersion: 1}
}

// onlineStatus: Online for 2 h with counters and a clock in step.
func onlineStatus() localapi.Status {
	off := localapi.Duration(300 * time.Millisecond)
	return localapi.Status{State: state.Online.String(), Since: now.Add(-2 * time.Hour), Mode: localapi.ModeAutonomousRestart,
		DataDir: "/data", DataDurable: true, ConnectorID: "conn-7f3a", ConnectorName: "dc1-connector-1",
		ControlPlane: "https://cp.example.com", Version: "0.1.0", LastHeartbeat: now.Add(-4 * time.Second),
		HeartbeatInterval: localapi.Duration(10 * time.Second), TunnelRTT: localapi.Duration(12300 * time.Microsecond),
		ActiveSessions: 3, SessionsTotal: 12, BytesUp: 48213, BytesDown: 9120334, ClockOffset: &off,
		CertNotAfter: now.Add(30 * 24 * time.Hour)}
}

// rig is the console's health screen against a fake connector and a fake
// updater, both served on real Unix sockets and reached with the real
// localapi clients, so every key's request goes over the wire.
type rig struct {
	t    *testing.T
	a    *App
	root string
	conn *fakeconnector.Backend
	upd  *fakeupdater.Updater
}

type rigOpt struct {
	size screen.Size
	root string // a configured root; "" = configuredRoot
}

func newRig(t *testing.T, st localapi.Status, im localapi.Image, o rigOpt) *rig {
	t.Helper()
	r := &rig{t: t, root: o.root}
	if r.root == "" {
		r.root = configuredRoot(t)
	}
	r.conn = fakeconnector.New()
	r.conn.Set(st)
	sock := filepath.Join(socketDir(t), "connector.sock")
	fakeconnector.Serve(t, r.conn, sock)
	var upd *localapi.UpdaterClient
	r.upd, upd = serveUpdater(t, im)
	r.a = New(Env{Root: r.root, TTY: "tty1", Connector: localapi.NewClient(sock), Updater: upd, Net: fakeNet{},
		Now: func() time.Time { return now }, Probes: fixedProbes(), Size: func() screen.Size { return o.size },
		Privileged: verityHelper{out: []byte("vroot: 0 188504 verity V\n")}, Run: fakeRunner{}, StepTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r.a.ctx = ctx
	r.a.start()
	drain(t, r.a)
	return r
}

// refresh asks every source again and waits for the answers.
func (r *rig) refresh() string {
	r.t.Helper()
	r.a.health.last = map[string]time.Time{}
	r.a.health.refresh(r.a)
	drain(r.t, r.a)
	return r.screen()
}

func (r *rig) screen() string { return r.a.frame().String() }

func (r *rig) key(keys ...rune) {
	for _, k := range keys {
		r.a.cur.key(r.a, screen.Key{Kind: screen.KeyRune, Rune: k})
	}
}

func (r *rig) esc() { r.a.cur.key(r.a, screen.Key{Kind: screen.KeyEsc}) }

// contains reports whether screen s shows want, with runs of spaces and
// line breaks read as one space (wrapped values, padded labels).
func contains(s, want string) bool { return strings.Contains(flat(s), flat(want)) }

func flat(s string) string { return strings.Join(strings.Fields(s), " ") }

// until runs posted work until the screen shows want. The deadline only
// catches a hang; it measures nothing.
func (r *rig) until(want string) string {
	r.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		if s := r.screen(); contains(s, want) {
			return s
		}
		select {
		case fn := <-r.a.posts:
			fn()
		case <-deadline:
			r.t.Fatalf("the screen never showed %q:\n%s", want, r.screen())
		}
	}
}

// fakeRunner answers the unprivileged commands the console runs:
// journalctl (one line per unit, planting a token to check redaction)
// and timedatectl. (ip(8) is not run: the console reads netlink.)
type fakeRunner struct{}

func (fakeRunner) Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	switch name {
	case "journalctl":
		return []byte("2026-11-28T11:59:00+0000 vaultpam-dc1 " + strings.Join(args, " ") + "\n" +
			"2026-11-28T11:59:01+0000 vaultpam-dc1 test: token=WQBMX-5KWDB-QXSZ8-DM906 pasted by mistake\n"), nil
	case "timedatectl":
		return []byte("yes\n"), nil
	}
	return nil, os.ErrNotExist
}

// loopbackRoot is a configured root whose control plane is a closed port
// on 127.0.0.1, so the diagnostics a test runs never leave the machine.
func loopbackRoot(t *testing.T) string {
	root := t.TempDir()
	s := settings.Settings{Interface: "eth0", Address: "192.0.2.10/24", Gateway: "192.0.2.1",
		DNS: "127.0.0.1", Hostname: "vaultpam-dc1", ControlPlaneURL: "https://127.0.0.1:9", ConnectorName: "dc1-connector-1"}
	if _, err := s.Write(root); err != nil {
		t.Fatal(err)
	}
	return root
}
