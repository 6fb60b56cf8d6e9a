package console

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/ovfenv"
	"github.com/vaultpam/appliance/firstboot/internal/privileged"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// Connector is the part of the connector's local API the console uses.
// *localapi.Client implements it.
type Connector interface {
	Status(ctx context.Context) (localapi.Status, error)
	SubmitToken(ctx context.Context, token string) error
}

// Updater is the appliance's image updater (vaultpam-update) as the
// console uses it: its local API on localapi.UpdaterSocket.
// *localapi.UpdaterClient implements it.
type Updater interface {
	Status(ctx context.Context) (localapi.Image, error)
	Install(ctx context.Context, r localapi.InstallRequest) error
	Rollback(ctx context.Context, r localapi.RollbackRequest) error
}

// SupportUploader is implemented by a Connector that can send a support
// bundle (already encrypted) to the control plane through its tunnel.
// *localapi.Client implements it; an *localapi.Error with
// localapi.CodeTunnelDown means the tunnel is down.
type SupportUploader interface {
	UploadSupportBundle(ctx context.Context, name string, data []byte) (localapi.SupportReceipt, error)
}

// Privileged is what the console asks of its root helper: the one
// privileged path (package privileged). *privileged.Client implements it.
// The console itself runs without privileges.
type Privileged interface {
	WriteSettings(ctx context.Context, s settings.Settings) ([]string, error)
	ApplyNetwork(ctx context.Context) error
	RestartConnector(ctx context.Context) error
	Reboot(ctx context.Context) error
	PowerOff(ctx context.Context) error
	GuestInfo(ctx context.Context) ([]byte, error)
	VerityStatus(ctx context.Context) ([]byte, error)
}

// Runner runs an unprivileged system command (journalctl, timedatectl) and
// returns its standard output. Commands never carry secrets in argv.
type Runner interface {
	Output(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec. BinDir, when set, is where the
// commands are looked up instead of $PATH (tests put fakes there).
type ExecRunner struct{ BinDir string }

// Output implements Runner.
func (r ExecRunner) Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	if r.BinDir != "" {
		name = filepath.Join(r.BinDir, name)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return out, fmt.Errorf("%s %s: %s", filepath.Base(name), strings.Join(args, " "), strings.TrimSpace(string(ee.Stderr)))
		}
		return out, fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out, nil
}

// DefaultDoneTimeout is how long the final screen of a setup an operator
// ran waits for Enter before it shows the health screen by itself.
const DefaultDoneTimeout = 60 * time.Second

// Env is the outside world of the console.
type Env struct {
	Root      string // prefix for /config, /data, /run, /etc, /proc the console reads; "/" on the appliance
	TTY       string // this console's name, shown on the other console ("tty1")
	Connector Connector
	// Updater is the image updater; nil = localapi.UpdaterSocket. Where
	// none answers (not on the appliance) the health screen shows the
	// image from /etc/os-release and offers no update keys.
	Updater Updater
	// Privileged does what needs root (writing /config, restarts, power,
	// the guestinfo and verity reads); nil = the helper on its default
	// socket.
	Privileged Privileged
	Net        netinfo.Source
	Run        Runner
	Now        func() time.Time
	OVF        ovfenv.Sources
	// DefaultURL pre-fills the control plane URL; "" = settings.DefaultControlPlaneURL.
	DefaultURL string
	Probes     Probes // appliance facts for the health screen; nil fields = real ones
	// Timeouts; zero values take the defaults in DefaultEnvTimeouts.
	AddressTimeout time.Duration // waiting for an address after apply
	StepTimeout    time.Duration // each diagnostic step
	EnrolTimeout   time.Duration // waiting for the connector to be Online
	// DoneTimeout is how long the "Setup is complete" screen waits for
	// Enter before it shows the health screen by itself (the operator
	// walked away); DefaultDoneTimeout when zero.
	DoneTimeout time.Duration
	// Repaint: each value received repaints the whole screen, like Ctrl-L.
	// The command sends SIGWINCH here: the terminal was resized, or another
	// program wrote on it (the boot report on the serial console does, and
	// then signals the console).
	Repaint <-chan os.Signal
	// Size returns the terminal's size; the screens are laid out for it
	// (at least 80×24) at start and after each Repaint. nil or a zero
	// size means 80×24.
	Size func() screen.Size
}

func (e *Env) defaults() {
	if e.Root == "" {
		e.Root = "/"
	}
	if e.TTY == "" {
		e.TTY = "console"
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Net == nil {
		e.Net = netinfo.Netlink{}
	}
	if e.Run == nil {
		e.Run = ExecRunner{}
	}
	if e.Updater == nil {
		e.Updater = localapi.NewUpdaterClient("")
	}
	if e.Privileged == nil {
		e.Privileged = privileged.NewClient("")
	}
	if e.DefaultURL == "" {
		e.DefaultURL = settings.DefaultControlPlaneURL
	}
	if e.AddressTimeout == 0 {
		e.AddressTimeout = 60 * time.Second
	}
	if e.StepTimeout == 0 {
		e.StepTimeout = 5 * time.Second
	}
	if e.EnrolTimeout == 0 {
		e.EnrolTimeout = 2 * time.Minute
	}
	if e.DoneTimeout == 0 {
		e.DoneTimeout = DefaultDoneTimeout
	}
}

// path returns p (absolute on the appliance) under the root.
func (e *Env) path(p string) string { return filepath.Join(e.Root, p) }
