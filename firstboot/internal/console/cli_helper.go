package console

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/vaultpam/appliance/firstboot/internal/privileged"
)

// HelperCLI is `vaultpam-console helper`: the console's root helper, the
// one privileged path (package privileged). On the appliance systemd
// starts it on the socket of vaultpam-console-helper.socket; --listen
// makes its own socket instead (tests, by hand).
type HelperCLI struct {
	Stderr io.Writer
	Args   []string // after "helper"
}

// Main serves the console's requests until ctx ends. It returns the exit
// code.
func (c HelperCLI) Main(ctx context.Context) int {
	fs := flag.NewFlagSet("vaultpam-console helper", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var (
		root   = fs.String("root", "/", "root directory holding config/")
		binDir = fs.String("bin-dir", "", "look up systemctl, vmware-rpctool and dmsetup here instead of $PATH")
		listen = fs.String("listen", "", "make this socket and listen on it, instead of the one systemd passes")
		trial  = fs.Duration("trial-timeout", privileged.DefaultTrial, "how long a network change stays on trial before the previous settings come back")
		revert = fs.Bool("revert-network", false, "restore the previous network settings if a trial's deadline has passed, then exit (vaultpam-network-revert.service)")
		atBoot = fs.Bool("at-boot", false, "with --revert-network: restore at once, files only (before systemd-networkd starts)")
	)
	if err := fs.Parse(c.Args); err != nil {
		return 2
	}
	cfg := privileged.DefaultConfig()
	cfg.Root, cfg.Run, cfg.Log, cfg.TrialTimeout = *root, ExecRunner{BinDir: *binDir}, c.Stderr, *trial
	srv, err := privileged.NewServer(cfg)
	if err != nil {
		fmt.Fprintf(c.Stderr, "vaultpam-console helper: error: %v\n", err)
		return 2
	}
	if *revert {
		what, err := srv.RevertIfDue(ctx, *atBoot)
		if err != nil {
			fmt.Fprintf(c.Stderr, "vaultpam-console helper: error: restoring the previous network settings: %v\n", err)
			return 1
		}
		fmt.Fprintf(c.Stderr, "vaultpam-console helper: %s\n", what)
		return 0
	}
	srv.Resume()
	var l net.Listener
	if *listen != "" {
		l, err = privileged.Listen(*listen)
	} else {
		l, err = systemdListener()
	}
	if err != nil {
		fmt.Fprintf(c.Stderr, "vaultpam-console helper: error: %v\n", err)
		return 1
	}
	fmt.Fprintf(c.Stderr, "vaultpam-console helper: serving the console on %s\n", l.Addr())
	if err := srv.Serve(ctx, l); err != nil {
		fmt.Fprintf(c.Stderr, "vaultpam-console helper: error: %v\n", err)
		return 1
	}
	return 0
}

// systemdListener takes the one socket systemd passed (LISTEN_FDS).
func systemdListener() (net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("taking the socket from systemd: %w", err)
	}
	if len(ls) != 1 || ls[0] == nil {
		for _, l := range ls {
			if l != nil {
				l.Close()
			}
		}
		return nil, fmt.Errorf("systemd passed %d sockets, want 1\nhint: start it through vaultpam-console-helper.socket, or pass --listen PATH", len(ls))
	}
	return ls[0], nil
}
