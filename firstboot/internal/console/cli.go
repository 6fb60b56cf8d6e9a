package console

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/firstboot/internal/ovfenv"
	"github.com/vaultpam/appliance/firstboot/internal/privileged"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/vtfont"
)

// CLI is the command line of vaultpam-console.
type CLI struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Args           []string // without the program name
	Version        string
	Repaint        <-chan os.Signal // see Env.Repaint
}

// Main parses flags, puts the terminal in raw mode and runs the console
// until the terminal closes or ctx ends. It returns the exit code.
// `vaultpam-console helper …` runs the root helper instead (HelperCLI).
func (c CLI) Main(ctx context.Context) int {
	if len(c.Args) > 0 && c.Args[0] == "helper" {
		return HelperCLI{Stderr: c.Stderr, Args: c.Args[1:]}.Main(ctx)
	}
	fs := flag.NewFlagSet("vaultpam-console", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var (
		env      Env
		socket   = fs.String("socket", firstOf(os.Getenv("PAM_AGENT_SOCKET"), localapi.DefaultSocket), "connector local API socket (default $PAM_AGENT_SOCKET)")
		updater  = fs.String("updater", firstOf(os.Getenv("PAM_UPDATER_SOCKET"), localapi.UpdaterSocket), "the image updater's socket (default $PAM_UPDATER_SOCKET)")
		helper   = fs.String("helper", privileged.DefaultSocket, "the root helper's socket (writing /config, restarts, power, guestinfo, verity)")
		binDir   = fs.String("bin-dir", "", "look up journalctl and timedatectl here instead of $PATH")
		ovfFile  = fs.String("ovf-env", "", "read the OVF environment from this file instead of VMware Tools or the CD-ROM")
		cdroms   = fs.String("cdrom", "/dev/sr0,/dev/sr1", "comma-separated devices to look for ovf-env.xml (ISO transport)")
		showVer  = fs.Bool("version", false, "print the version and exit")
		noRaw    = fs.Bool("no-raw", false, "do not switch the terminal to raw mode (it already is)")
		keepFont = fs.Bool("keep-font", false, "on the VGA console, keep the console font instead of choosing one for the framebuffer's size")
		addrWait = fs.Duration("address-timeout", 60*time.Second, "how long to wait for an address after applying network settings")
		step     = fs.Duration("step-timeout", 5*time.Second, "timeout of each diagnostic step")
		enrol    = fs.Duration("enrol-timeout", 2*time.Minute, "how long to wait for the connector to be Online")
		doneWait = fs.Duration("done-timeout", DefaultDoneTimeout, "how long the final setup screen waits for Enter before it shows the health screen")
	)
	fs.StringVar(&env.Root, "root", "/", "root directory holding config/, data/, run/, etc/, proc/")
	fs.StringVar(&env.TTY, "tty", "", "this console's name shown to the other console (default: the terminal's name)")
	fs.StringVar(&env.DefaultURL, "default-url", "", "control plane URL offered when nothing else is known")
	if err := fs.Parse(c.Args); err != nil {
		return 2
	}
	if *showVer {
		fmt.Fprintln(c.Stdout, "vaultpam-console", c.Version)
		return 0
	}
	if env.TTY == "" {
		env.TTY = ttyName(c.Stdin)
	}
	env.Repaint = c.Repaint
	if f, ok := c.Stdout.(*os.File); ok {
		env.Size = func() screen.Size {
			s, _ := screen.TermSize(f) // unknown (a serial line): 80×24
			return s
		}
	}
	env.Connector = localapi.NewClient(*socket)
	env.Updater = localapi.NewUpdaterClient(*updater)
	env.Run = ExecRunner{BinDir: *binDir}
	env.Privileged = privileged.NewClient(*helper)
	env.AddressTimeout, env.StepTimeout, env.EnrolTimeout, env.DoneTimeout = *addrWait, *step, *enrol, *doneWait
	env.OVF = ovfenv.Sources{File: *ovfFile}
	if *ovfFile == "" {
		env.OVF.GuestInfo = env.Privileged.GuestInfo
		for _, d := range strings.Split(*cdroms, ",") {
			if d = strings.TrimSpace(d); d != "" {
				env.OVF.CDROMs = append(env.OVF.CDROMs, d)
			}
		}
	}
	if f, ok := c.Stdin.(*os.File); ok && !*keepFont {
		c.fitFont(f, env.Root)
	}
	if f, ok := c.Stdin.(*os.File); ok && !*noRaw {
		restore, err := screen.Raw(f)
		if err != nil {
			fmt.Fprintf(c.Stderr, "vaultpam-console: error: %v\nhint: run it on a terminal (tty1, ttyS0) or pass --no-raw\n", err)
			return 1
		}
		defer restore()
	}
	if err := New(env).Run(ctx, c.Stdin, c.Stdout); err != nil {
		fmt.Fprintf(c.Stderr, "vaultpam-console: error: %v\n", err)
		return 1
	}
	return 0
}

func ttyName(in io.Reader) string {
	if f, ok := in.(*os.File); ok {
		if p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd())); err == nil && strings.HasPrefix(p, "/dev/") {
			return strings.TrimPrefix(p, "/dev/")
		}
		return filepath.Base(f.Name())
	}
	return "console"
}

// fitFont chooses the console font for the framebuffer's size on the VGA
// console (TERM=linux, a virtual terminal, a framebuffer under root), so
// that the screens fill it (package vtfont). Anywhere else it does
// nothing; a failure is logged and the console goes on with the font it
// has.
func (c CLI) fitFont(tty *os.File, root string) {
	if os.Getenv("TERM") != "linux" || !vtfont.HasFramebuffer(root) {
		return
	}
	r, err := vtfont.Fit(tty)
	switch {
	case errors.Is(err, vtfont.ErrNotVT):
	case err != nil:
		fmt.Fprintf(c.Stderr, "vaultpam-console: warning: %v\nhint: the screens are drawn for the terminal's size as it is\n", err)
	case r.Font.Name == "":
		fmt.Fprintf(c.Stderr, "vaultpam-console: framebuffer %s is too small for 80x24 with any font; console font unchanged\n", r.Pixels)
	case r.Changed:
		fmt.Fprintf(c.Stderr, "vaultpam-console: console font %s for the %s framebuffer: %dx%d characters\n", r.Font, r.Pixels, r.Cols, r.Rows)
	}
}
