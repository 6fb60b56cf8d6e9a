// Command vaultpam-console is the appliance's console: the first-boot
// wizard (network, control plane, enrolment token) and, once configured,
// the health screen with guided recovery. systemd starts it on tty1 and
// ttyS0; see firstboot/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vaultpam/appliance/firstboot/internal/console"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	code := console.CLI{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Args: os.Args[1:], Version: version, Repaint: winch}.Main(ctx)
	stop()
	os.Exit(code)
}
