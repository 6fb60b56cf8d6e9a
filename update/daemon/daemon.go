// Package daemon is the updater's long-running side (vaultpam-update
// serve): at start it reconciles what the last boot left (package
// reconcile), then serves the local API on localapi.UpdaterSocket, runs
// installs and manual rollbacks, reboots an installed update when the
// maintenance window allows (after the connector drained its sessions),
// watches a trial boot until it is blessed, and offers an update found on
// the CD-ROM.
//
// One mutex guards the daemon's state; installs run one at a time in
// their own goroutine, so API calls never wait for a disk write.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/cdrom"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/install"
	"github.com/vaultpam/appliance/update/reboot"
	"github.com/vaultpam/appliance/update/reconcile"
	"github.com/vaultpam/appliance/update/slot"
	"github.com/vaultpam/appliance/update/state"
	"github.com/vaultpam/appliance/update/trust"
)

// Config says where everything is. Start from DefaultConfig.
type Config struct {
	Socket      string // the updater's API socket
	SocketGroup string // group that may use it ("" keeps the process's)
	// ConsoleUser is the console's user: besides root, the only caller
	// that may confirm a downgrade or roll back ("" or an unknown user:
	// root only).
	ConsoleUser string
	// IncomingOwner is the user the download directory
	// (StateDir/incoming) belongs to: the connector's; "" leaves it root's.
	IncomingOwner string
	StateDir      string // /data/update
	ESPDir        string // /efi/EFI/Linux
	VarsDir       string // efivarfs
	Disk          slot.Disk
	// BakedRoot is the image's trusted TUF root.
	BakedRoot string
	// OSRelease names the running version (IMAGE_VERSION).
	OSRelease string
	// BootID identifies this boot.
	BootID string
	// ConnectorSocket is the connector's local API (status, drain).
	ConnectorSocket string
	// ConnectorConfig holds update_window.
	ConnectorConfig string
	// CDROMDevices and CDROMMount: where update media are looked for and
	// mounted; CDROMPoll is how often (0 disables the CD-ROM).
	CDROMDevices string
	CDROMMount   string
	CDROMPoll    time.Duration
	// MountCDROM and UnmountCDROM replace mount(8) and umount(8) (tests).
	MountCDROM   func(dev, dir string) error
	UnmountCDROM func(dir string) error
	// DrainGrace is how long in-flight sessions may go on before the
	// reboot.
	DrainGrace time.Duration
	// Tick is how often the daemon looks at the window and a trial.
	Tick time.Duration
	// Reboot reboots the machine; nil means `systemctl reboot`.
	Reboot      func(ctx context.Context) error
	Veritysetup string
	Now         func() time.Time
	Logf        func(format string, args ...any)
}

// DefaultConfig returns the appliance's configuration.
func DefaultConfig() Config {
	return Config{
		Socket:          localapi.UpdaterSocket,
		SocketGroup:     "vaultpam",
		ConsoleUser:     "vaultpam-console",
		IncomingOwner:   "vaultpam",
		StateDir:        state.DefaultDir,
		ESPDir:          esp.DefaultDir,
		VarsDir:         esp.DefaultVarsDir,
		Disk:            slot.DefaultDisk(),
		BakedRoot:       "/usr/share/vaultpam/update/root.json",
		OSRelease:       "/usr/lib/os-release",
		BootID:          "/proc/sys/kernel/random/boot_id",
		ConnectorSocket: localapi.DefaultSocket,
		ConnectorConfig: "/config/connector.yaml",
		CDROMDevices:    cdrom.DefaultDevices,
		CDROMMount:      cdrom.DefaultMountDir,
		CDROMPoll:       30 * time.Second,
		DrainGrace:      reboot.DefaultGrace,
		Tick:            10 * time.Second,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	for name, v := range map[string]string{"socket": c.Socket, "state dir": c.StateDir, "ESP dir": c.ESPDir,
		"EFI variables dir": c.VarsDir, "baked root": c.BakedRoot, "os-release": c.OSRelease, "connector socket": c.ConnectorSocket} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
	}
	if c.Tick <= 0 {
		errs = append(errs, errors.New("tick must be positive"))
	}
	return errors.Join(errs...)
}

// Daemon is the running updater.
type Daemon struct {
	cfg       Config
	store     *state.Store
	esp       *esp.Dir
	vars      esp.Vars
	installer *install.Installer
	finder    *cdrom.Finder
	conn      *localapi.Client
	running   slot.Name
	version   string
	bootID    string
	trustRoot int64
	// consoleUID is ConsoleUser's uid, -1 when there is none.
	consoleUID int

	checkMu   sync.Mutex // one install.Check at a time (they share the TUF store)
	mu        sync.Mutex
	working   *localapi.UpdateStatus // an install running now
	available *localapi.Available
	cdromWhy  *localapi.UpdateStatus // why the CD-ROM's update is not offered
	cdromKey  string
	rebooting bool
	stepErr   string // the last error step saw reading the records
	// reconcileErr is why the last reconcile failed ("" when it did not).
	reconcileErr string
	kick         chan struct{}
}

// New opens the state, finds the running slot and version and reconciles
// what the last boot left.
func New(cfg Config) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("updater config: %w", err)
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Daemon{cfg: cfg, esp: &esp.Dir{Path: cfg.ESPDir}, vars: esp.Vars{Dir: cfg.VarsDir},
		conn: localapi.NewClient(cfg.ConnectorSocket), kick: make(chan struct{}, 1), consoleUID: -1}
	if cfg.ConsoleUser != "" {
		if u, err := user.Lookup(cfg.ConsoleUser); err != nil {
			cfg.Logf("updater: the console's user %s: %v (only root may confirm a downgrade or roll back)", cfg.ConsoleUser, err)
		} else if uid, err := strconv.Atoi(u.Uid); err == nil {
			d.consoleUID = uid
		}
	}
	var err error
	if d.store, err = state.Open(cfg.StateDir); err != nil {
		return nil, err
	}
	if err := d.store.Secure(); err != nil {
		return nil, err
	}
	if cfg.IncomingOwner != "" {
		u, err := user.Lookup(cfg.IncomingOwner)
		if err != nil {
			return nil, fmt.Errorf("the connector's user %s: %w", cfg.IncomingOwner, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := d.store.MakeIncoming(uid, gid); err != nil {
			return nil, err
		}
	}
	if d.running, err = cfg.Disk.Running(); err != nil {
		return nil, err
	}
	if d.version, err = osVersion(cfg.OSRelease); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(cfg.BootID); err == nil {
		d.bootID = strings.TrimSpace(string(b))
	}
	baked, err := os.ReadFile(cfg.BakedRoot)
	if err != nil {
		return nil, fmt.Errorf("the image's update root %s: %w", cfg.BakedRoot, err)
	}
	verifier := &trust.Verifier{BakedRoot: baked, StateDir: d.store.TUFDir(), Now: cfg.Now}
	d.trustRoot = verifier.RootVersion()
	d.installer = &install.Installer{
		Disk: cfg.Disk, ESP: d.esp, Vars: d.vars, Store: d.store, Verifier: verifier,
		RunningVersion: d.version, Veritysetup: cfg.Veritysetup, Now: cfg.Now, Logf: cfg.Logf,
		ConnectorID: func(ctx context.Context) (string, error) {
			st, err := d.conn.Status(ctx)
			return st.ConnectorID, err
		},
	}
	if cfg.CDROMPoll > 0 {
		d.finder = &cdrom.Finder{Devices: cfg.CDROMDevices, MountDir: cfg.CDROMMount, Mount: cfg.MountCDROM, Unmount: cfg.UnmountCDROM}
	}
	// A reconcile that fails (/data full, a record that cannot be moved
	// aside) does not stop the updater: the API says why, installs wait,
	// and every tick tries again.
	d.reconcile()
	cfg.Logf("updater: running %s in slot %s", d.version, d.running)
	return d, nil
}

// reconcile runs reconcile.Run and remembers its error for the status
// (logged when it changes).
func (d *Daemon) reconcile() (reconcile.Result, error) {
	r := &reconcile.Reconciler{Store: d.store, ESP: d.esp, Vars: d.vars, Running: d.running,
		RunningVersion: d.version, BootID: d.bootID, Now: d.cfg.Now, Logf: d.cfg.Logf}
	res, err := r.Run()
	msg := ""
	if err != nil {
		err = fmt.Errorf("reconciling the update state: %w", err)
		msg = err.Error()
	}
	d.mu.Lock()
	changed := msg != d.reconcileErr
	d.reconcileErr = msg
	d.mu.Unlock()
	if err != nil {
		if changed {
			d.cfg.Logf("updater: %v (trying again every %s)", err, d.cfg.Tick)
		}
		return res, err
	}
	if res.Outcome != reconcile.Nothing {
		d.cfg.Logf("updater: reconciled: %s", res.Outcome)
	}
	return res, nil
}

// osVersion reads IMAGE_VERSION (else VERSION_ID) from os-release.
func osVersion(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("the running version: %w", err)
	}
	vals := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			vals[k] = strings.Trim(v, `"'`)
		}
	}
	for _, k := range []string{"IMAGE_VERSION", "VERSION_ID"} {
		if v := vals[k]; v != "" {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s names no IMAGE_VERSION", path)
}

// Run serves the API and runs the loops until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	srv, err := d.listen()
	if err != nil {
		return err
	}
	defer srv.close()
	go srv.keepSocket(ctx)
	tick := time.NewTicker(d.cfg.Tick)
	defer tick.Stop()
	var cd <-chan time.Time
	if d.finder != nil {
		t := time.NewTicker(d.cfg.CDROMPoll)
		defer t.Stop()
		cd = t.C
		d.checkCDROM(ctx)
	}
	d.step(ctx)
	for {
		select {
		case <-ctx.Done():
			if d.finder != nil {
				d.finder.Release()
			}
			return nil
		case <-tick.C:
			d.step(ctx)
		case <-d.kick:
			d.step(ctx)
		case <-cd:
			d.checkCDROM(ctx)
		}
	}
}

// poke makes Run look at the state now.
func (d *Daemon) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}
