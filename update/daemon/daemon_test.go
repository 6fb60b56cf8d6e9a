package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/gate"
	"github.com/vaultpam/appliance/update/internal/updatetest"
	"github.com/vaultpam/appliance/update/slot"
	"github.com/vaultpam/appliance/update/state"
)

const rootBytes = 1 << 20

// connector is a fake connector: the real local API on a Unix socket,
// with a drain call, its status set by the test.
type connector struct {
	mu     sync.Mutex
	st     localapi.Status
	drains []string
}

func (c *connector) Status() localapi.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	if st.State == "online" {
		st.LastHeartbeat = time.Now() // heartbeating
	}
	return st
}
func (c *connector) SubmitToken(context.Context, string) error { return nil }
func (c *connector) set(st localapi.Status) {
	c.mu.Lock()
	c.st = st
	c.mu.Unlock()
}

func serveConnector(t *testing.T, c *connector) string {
	sock := filepath.Join(t.TempDir(), "connector.sock")
	l, err := localapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", localapi.Handler(c))
	mux.HandleFunc("POST /v1/drain", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		c.mu.Lock()
		c.drains = append(c.drains, body["reason"]+" "+body["grace"])
		c.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// appliance is the outside world of a daemon across reboots: the disk,
// ESP, EFI variables, /data/update, the connector, the release repo.
type appliance struct {
	t        *testing.T
	disk     *updatetest.Disk
	repo     *updatetest.Repo
	espDir   string
	vars     esp.Vars
	stateDir string
	conn     *connector
	connSock string
	root     string // baked root.json
	boot     int
	version  string
	reboots  chan struct{}
	cfgFile  string
	stop     func()
	// logf, when set, also gets the daemon's log lines.
	logf func(format string, args ...any)
	tick time.Duration
	// consoleUser is Config.ConsoleUser ("" : root only).
	consoleUser string
}

func newAppliance(t *testing.T) *appliance {
	a := &appliance{t: t, espDir: t.TempDir(), vars: esp.Vars{Dir: t.TempDir()}, stateDir: filepath.Join(t.TempDir(), "update"),
		conn: &connector{st: localapi.Status{State: "online", ConnectorID: "conn-1"}}, version: "0.1.0", reboots: make(chan struct{}, 4), tick: 20 * time.Millisecond}
	running := updatetest.MakeImage(t, "0.1.0", rootBytes)
	a.disk = updatetest.NewDisk(t, running)
	b, _ := os.ReadFile(running.UKI)
	os.WriteFile(filepath.Join(a.espDir, "vaultpam-0.1.0-A.efi"), b, 0o644)
	a.repo = updatetest.NewRepo(t, nil)
	a.root = filepath.Join(t.TempDir(), "root.json")
	os.WriteFile(a.root, a.repo.Root, 0o644)
	a.connSock = serveConnector(t, a.conn)
	a.cfgFile = filepath.Join(t.TempDir(), "connector.yaml")
	os.WriteFile(a.cfgFile, []byte("control_plane_url: https://cp.example\nconnector_name: c1\n"), 0o644)
	return a
}

// start runs a daemon for the current boot; it returns its socket.
func (a *appliance) start(cdromDevs string, mount func(dev, dir string) error) string {
	t := a.t
	a.boot++
	dir := t.TempDir()
	osr := filepath.Join(dir, "os-release")
	os.WriteFile(osr, []byte("ID=vaultpam\nIMAGE_VERSION=\""+a.version+"\"\n"), 0o644)
	bootID := filepath.Join(dir, "boot_id")
	os.WriteFile(bootID, []byte("boot-"+string(rune('0'+a.boot))+"\n"), 0o644)
	cfg := DefaultConfig()
	cfg.Socket = filepath.Join(dir, "update.sock")
	cfg.SocketGroup, cfg.IncomingOwner, cfg.ConsoleUser = "", "", a.consoleUser
	cfg.StateDir, cfg.ESPDir, cfg.VarsDir, cfg.Disk = a.stateDir, a.espDir, a.vars.Dir, a.disk.Disk
	cfg.BakedRoot, cfg.OSRelease, cfg.BootID = a.root, osr, bootID
	cfg.ConnectorSocket, cfg.ConnectorConfig = a.connSock, a.cfgFile
	cfg.CDROMPoll = 0
	if cdromDevs != "" {
		cfg.CDROMDevices, cfg.CDROMMount, cfg.CDROMPoll = cdromDevs, filepath.Join(dir, "cdrom"), 20*time.Millisecond
		cfg.MountCDROM, cfg.UnmountCDROM = mount, os.Remove
	}
	cfg.DrainGrace = time.Second
	cfg.Tick = a.tick
	cfg.Logf = func(format string, args ...any) {
		t.Logf(format, args...)
		if a.logf != nil {
			a.logf(format, args...)
		}
	}
	cfg.Reboot = func(context.Context) error { a.reboots <- struct{}{}; return nil }
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("boot %d: New = %v", a.boot, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	a.stop = func() { cancel(); <-done }
	for range 500 {
		if _, err := os.Stat(cfg.Socket); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cfg.Socket
}

// powerCycle stops the daemon and boots: the systemd-boot model picks an
// entry, the disk shows that slot running.
func (a *appliance) powerCycle() esp.Entry {
	a.stop()
	e := updatetest.Boot(a.t, a.espDir, a.vars)
	a.disk.SetRunning(a.t, slot.Name(e.Slot))
	a.version = e.Version
	return e
}

func waitStatus(t *testing.T, c *localapi.UpdaterClient, what string, ok func(localapi.Image) bool) localapi.Image {
	t.Helper()
	var last localapi.Image
	for range 3000 {
		im, err := c.Status(context.Background())
		if err == nil && ok(im) {
			return im
		}
		last = im
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := json.Marshal(last)
	t.Fatalf("status never showed %s; last: %s", what, b)
	return last
}

func TestUpdateEndToEnd(t *testing.T) {
	a := newAppliance(t)
	c := localapi.NewUpdaterClient(a.start("", nil))
	im, err := c.Status(context.Background())
	if err != nil || im.Version != "0.1.0" || im.Slot != "A" || im.Pending || im.Other == nil || im.Other.State != "empty" {
		t.Fatalf("status = %+v, %v", im, err)
	}

	// The connector downloaded an offer.
	im2 := updatetest.MakeImage(t, "0.2.0", rootBytes)
	path, digest := im2.Bundle(t, t.TempDir())
	a.repo.AddBundle(t, path, "0.2.0", digest)
	offer := filepath.Join(a.stateDir, "incoming", "offer-1")
	os.MkdirAll(filepath.Dir(offer), 0o700)
	os.Rename(a.repo.Offer(t, path), offer)

	err = c.Install(context.Background(), localapi.InstallRequest{Source: "control_plane", Dir: offer, Target: filepath.Base(path)})
	if err != nil {
		t.Fatalf("Install = %v", err)
	}
	<-a.reboots // installed, window empty: drained and rebooted at once
	if len(a.conn.drains) != 1 || a.conn.drains[0] != "update_reboot 1s" {
		t.Errorf("drain requests = %v", a.conn.drains)
	}
	im = waitStatus(t, c, "rebooting", func(im localapi.Image) bool { return im.Update != nil && im.Update.State == localapi.UpdateRebooting })
	t.Logf("before the reboot: %s", im.Update.Reason)

	e := a.powerCycle()
	if e.Name != "vaultpam-0.2.0-B+2-1.efi" {
		t.Fatalf("booted %s, want B on trial", e.Name)
	}
	a.conn.set(localapi.Status{State: "connecting"})
	c = localapi.NewUpdaterClient(a.start("", nil))
	im = waitStatus(t, c, "trial", func(im localapi.Image) bool { return im.Pending && im.Slot == "B" && im.Version == "0.2.0" })
	t.Logf("on trial: %s", im.Update.Reason)

	// The gate (its own process on the box), then systemd-bless-boot.
	a.conn.set(localapi.Status{State: "online", ConnectorID: "conn-1"})
	store, _ := state.Open(a.stateDir)
	g := &gate.Gate{Status: localapi.NewClient(a.connSock).Status, Store: store, Deadline: 5 * time.Second, Poll: 10 * time.Millisecond, Steady: 50 * time.Millisecond, Slot: "B", Version: "0.2.0", Entry: e.Name}
	if v, err := g.Run(context.Background()); err != nil || !v.OK {
		t.Fatalf("gate = %+v %v", v, err)
	}
	updatetest.Bless(t, a.espDir, e)
	im = waitStatus(t, c, "succeeded", func(im localapi.Image) bool { return im.Update != nil && im.Update.State == localapi.UpdateSucceeded })
	if im.Pending || im.Other == nil || im.Other.Slot != "A" || im.Other.State != "good" || im.Other.Version != "0.1.0" {
		t.Errorf("status = %+v other %+v", im, im.Other)
	}
	t.Logf("succeeded: %s", im.Update.Reason)
}

func TestRefusalOverTheSocket(t *testing.T) {
	a := newAppliance(t)
	c := localapi.NewUpdaterClient(a.start("", nil))
	im2 := updatetest.MakeImage(t, "0.0.9", rootBytes)
	path, digest := im2.Bundle(t, t.TempDir())
	a.repo.AddBundle(t, path, "0.0.9", digest)
	offer := filepath.Join(a.stateDir, "incoming", "offer-old")
	os.MkdirAll(filepath.Dir(offer), 0o700)
	os.Rename(a.repo.Offer(t, path), offer)
	err := c.Install(context.Background(), localapi.InstallRequest{Source: "control_plane", Dir: offer, Target: filepath.Base(path)})
	var e *localapi.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || e.Code != localapi.UpdateCodeNotNewer || e.Hint == "" {
		t.Fatalf("Install = %#v, want 409 %s with a hint", err, localapi.UpdateCodeNotNewer)
	}
	t.Logf("refused: %s (hint: %s)", e.Message, e.Hint)
	// A directory outside /data/update/incoming is a bad request.
	err = c.Install(context.Background(), localapi.InstallRequest{Source: "control_plane", Dir: t.TempDir(), Target: "x.update"})
	if !errors.As(err, &e) || e.Code != "bad_request" {
		t.Errorf("Install outside incoming = %v", err)
	}
	if err := c.Rollback(context.Background(), localapi.RollbackRequest{Confirm: true}); !errors.As(err, &e) || e.Code != localapi.UpdateCodeNothingHere {
		t.Errorf("Rollback with an empty slot B = %v, want %s", err, localapi.UpdateCodeNothingHere)
	}
}

func TestCDROMOfferedAndInstalled(t *testing.T) {
	if _, err := exec.LookPath("genisoimage"); err != nil {
		t.Skip("genisoimage is not installed (make deps)")
	}
	a := newAppliance(t)
	im2 := updatetest.MakeImage(t, "0.2.0", rootBytes)
	path, digest := im2.Bundle(t, t.TempDir())
	a.repo.AddBundle(t, path, "0.2.0", digest)
	// The update ISO's tree, and a real ISO made of it in the drive.
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "vaultpam-update"), 0o755)
	os.Rename(a.repo.Offer(t, ""), filepath.Join(tree, "vaultpam-update", "metadata"))
	b, _ := os.ReadFile(path)
	os.WriteFile(filepath.Join(tree, "vaultpam-update", filepath.Base(path)), b, 0o644)
	devs := t.TempDir()
	iso := filepath.Join(t.TempDir(), "update.iso")
	if out, err := exec.Command("genisoimage", "-quiet", "-J", "-r", "-V", "VPAM-UPDATE", "-o", iso, tree).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v %s", err, out)
	}
	os.Symlink(iso, filepath.Join(devs, "sr0"))
	// This machine's kernel has no iso9660: "mounting" serves the tree
	// the ISO was made from.
	c := localapi.NewUpdaterClient(a.start(filepath.Join(devs, "sr*"), func(dev, dir string) error { os.Remove(dir); return os.Symlink(tree, dir) }))
	im := waitStatus(t, c, "available", func(im localapi.Image) bool { return im.Available != nil })
	if im.Available.Version != "0.2.0" || im.Available.Source != "cdrom" {
		t.Errorf("available = %+v", im.Available)
	}
	if err := c.Install(context.Background(), localapi.InstallRequest{Source: "cdrom"}); err != nil {
		t.Fatalf("Install from CD-ROM = %v", err)
	}
	<-a.reboots
	if names, _ := os.ReadDir(a.espDir); len(names) != 2 || names[1].Name() != "vaultpam-0.2.0-B+3.efi" {
		t.Errorf("ESP = %v", names)
	}
}

func TestCDROMRefusedSaysWhy(t *testing.T) {
	if _, err := exec.LookPath("genisoimage"); err != nil {
		t.Skip("genisoimage is not installed (make deps)")
	}
	a := newAppliance(t)
	other := updatetest.NewRepo(t, nil) // an unknown key
	im2 := updatetest.MakeImage(t, "0.2.0", rootBytes)
	path, digest := im2.Bundle(t, t.TempDir())
	other.AddBundle(t, path, "0.2.0", digest)
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "vaultpam-update"), 0o755)
	os.Rename(other.Offer(t, ""), filepath.Join(tree, "vaultpam-update", "metadata"))
	b, _ := os.ReadFile(path)
	os.WriteFile(filepath.Join(tree, "vaultpam-update", filepath.Base(path)), b, 0o644)
	devs := t.TempDir()
	iso := filepath.Join(t.TempDir(), "update.iso")
	exec.Command("genisoimage", "-quiet", "-J", "-r", "-V", "VPAM-UPDATE", "-o", iso, tree).Run()
	os.Symlink(iso, filepath.Join(devs, "sr0"))
	c := localapi.NewUpdaterClient(a.start(filepath.Join(devs, "sr*"), func(dev, dir string) error { os.Remove(dir); return os.Symlink(tree, dir) }))
	im := waitStatus(t, c, "why", func(im localapi.Image) bool { return im.Update != nil && im.Update.Source == "cdrom" })
	if im.Available != nil || !strings.Contains(im.Update.Reason, "not signed by a trusted key") {
		t.Errorf("status = %+v, update %+v", im, im.Update)
	}
	t.Logf("CD-ROM: %s", im.Update.Reason)
}

func TestManualRollback(t *testing.T) {
	a := newAppliance(t)
	// Slot B runs 0.2.0, blessed; slot A holds the good 0.1.0.
	im2 := updatetest.MakeImage(t, "0.2.0", rootBytes)
	a.disk.Fill(t, "VPAM-ROOT-B", im2.Root)
	a.disk.Fill(t, "VPAM-VERITY-B", im2.Verity)
	os.WriteFile(filepath.Join(a.espDir, "vaultpam-0.2.0-B.efi"), []byte("uki B"), 0o644)
	a.disk.SetRunning(t, slot.B)
	a.version = "0.2.0"
	c := localapi.NewUpdaterClient(a.start("", nil))
	var e *localapi.Error
	if err := c.Rollback(context.Background(), localapi.RollbackRequest{}); !errors.As(err, &e) || e.Code != "bad_request" {
		t.Errorf("Rollback without confirm = %v", err)
	}
	if err := c.Rollback(context.Background(), localapi.RollbackRequest{Confirm: true}); err != nil {
		t.Fatalf("Rollback = %v", err)
	}
	<-a.reboots
	if v, ok, _ := a.vars.Get(esp.VarOneShot); !ok || v != "vaultpam-0.1.0-a+3.efi" {
		t.Errorf("LoaderEntryOneShot = %q", v)
	}
	booted := a.powerCycle()
	if booted.Name != "vaultpam-0.1.0-A+2-1.efi" {
		t.Fatalf("booted %s", booted.Name)
	}
	c = localapi.NewUpdaterClient(a.start("", nil))
	updatetest.Bless(t, a.espDir, booted)
	im := waitStatus(t, c, "rolled back", func(im localapi.Image) bool { return im.Update != nil && im.Update.State == localapi.UpdateSucceeded })
	if im.Version != "0.1.0" || im.Other == nil || im.Other.Version != "0.2.0" || im.Other.State == "good" {
		t.Errorf("status %+v other %+v", im, im.Other)
	}
	if next := a.powerCycle(); next.Slot != "A" {
		t.Errorf("next boot %s, want A to stay", next.Name)
	}
}

// TestRebootWaitsForTheWindow: with update_window closed, an installed
// update waits; when the window opens (here: the setting changes), the
// appliance drains and reboots.
func TestRebootWaitsForTheWindow(t *testing.T) {
	a := newAppliance(t)
	closed := time.Now().UTC().Add(3*time.Hour).Format("15:04") + "-" + time.Now().UTC().Add(4*time.Hour).Format("15:04")
	os.WriteFile(a.cfgFile, []byte("control_plane_url: https://cp.example\nconnector_name: c1\nupdate_window: \""+closed+"\"\n"), 0o644)
	c := localapi.NewUpdaterClient(a.start("", nil))
	im2 := updatetest.MakeImage(t, "0.2.0", rootBytes)
	path, digest := im2.Bundle(t, t.TempDir())
	a.repo.AddBundle(t, path, "0.2.0", digest)
	offer := filepath.Join(a.stateDir, "incoming", "offer-1")
	os.MkdirAll(filepath.Dir(offer), 0o700)
	os.Rename(a.repo.Offer(t, path), offer)
	if err := c.Install(context.Background(), localapi.InstallRequest{Source: "control_plane", Dir: offer, Target: filepath.Base(path)}); err != nil {
		t.Fatal(err)
	}
	im := waitStatus(t, c, "installed", func(im localapi.Image) bool { return im.Update != nil && im.Update.State == localapi.UpdateInstalled })
	if !strings.Contains(im.Update.Reason, "maintenance window "+closed+" UTC") {
		t.Errorf("reason = %q", im.Update.Reason)
	}
	t.Logf("waiting: %s", im.Update.Reason)
	select {
	case <-a.reboots:
		t.Fatal("rebooted outside the maintenance window")
	case <-time.After(200 * time.Millisecond): // ten ticks of the daemon
	}
	os.WriteFile(a.cfgFile, []byte("control_plane_url: https://cp.example\nconnector_name: c1\n"), 0o644)
	<-a.reboots
}

func TestStateDirTakenBackFromTheConnector(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	a := newAppliance(t)
	os.MkdirAll(a.stateDir, 0o777)
	os.Chown(a.stateDir, 990, 990) // the connector made it first
	a.start("", nil)
	fi, _ := os.Stat(a.stateDir)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("/data/update: uid %d mode %v, want root 0755", st.Uid, fi.Mode().Perm())
	}
}

// TestCDROMNotNewsKeepsTheLastResult: seen in QEMU — the ISO still in
// the drive after its update succeeded (now not newer), or after it
// rolled back (now failed here), hid the last result behind "not
// offered".
func TestCDROMNotNewsKeepsTheLastResult(t *testing.T) {
	if _, err := exec.LookPath("genisoimage"); err != nil {
		t.Skip("genisoimage is not installed (make deps)")
	}
	for _, c := range []struct {
		name, version string
		last          localapi.UpdateStatus
		failed        bool
	}{
		{"same version", "0.1.0", localapi.UpdateStatus{Version: "0.1.0", State: localapi.UpdateSucceeded, Reason: "0.1.0 in slot A: connector Online"}, false},
		{"rolled back", "0.2.0", localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateRolledBack, Reason: "0.2.0 in slot B failed: not Online"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := newAppliance(t)
			store, _ := state.Open(a.stateDir)
			store.SetLast(c.last)
			if c.failed {
				store.AddFailed(state.Failed{Version: c.version, Reason: "not Online"})
			}
			im1 := updatetest.MakeImage(t, c.version, rootBytes)
			path, digest := im1.Bundle(t, t.TempDir())
			a.repo.AddBundle(t, path, c.version, digest)
			tree := t.TempDir()
			os.MkdirAll(filepath.Join(tree, "vaultpam-update"), 0o755)
			os.Rename(a.repo.Offer(t, ""), filepath.Join(tree, "vaultpam-update", "metadata"))
			b, _ := os.ReadFile(path)
			os.WriteFile(filepath.Join(tree, "vaultpam-update", filepath.Base(path)), b, 0o644)
			devs := t.TempDir()
			iso := filepath.Join(t.TempDir(), "update.iso")
			exec.Command("genisoimage", "-quiet", "-J", "-r", "-V", "VPAM-UPDATE", "-o", iso, tree).Run()
			os.Symlink(iso, filepath.Join(devs, "sr0"))
			mounted := make(chan struct{}, 10)
			c2 := localapi.NewUpdaterClient(a.start(filepath.Join(devs, "sr*"), func(dev, dir string) error {
				mounted <- struct{}{}
				os.Remove(dir)
				return os.Symlink(tree, dir)
			}))
			<-mounted
			time.Sleep(100 * time.Millisecond) // five CD-ROM polls
			im, _ := c2.Status(context.Background())
			if im.Available != nil || im.Update == nil || im.Update.State != c.last.State {
				t.Errorf("status = available %+v, update %+v; want no offer and the last result", im.Available, im.Update)
			}
		})
	}
}
