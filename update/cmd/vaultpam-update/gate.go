package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/gate"
	"github.com/vaultpam/appliance/update/slot"
	"github.com/vaultpam/appliance/update/state"
)

// blessBoot is systemd's boot-assessment tool (package systemd-boot).
const blessBoot = "/usr/lib/systemd/systemd-bless-boot"

func cmdGate(ctx context.Context, env Env, args []string) int {
	fs := newFlags(env, "gate")
	deadline := fs.Duration("deadline", gate.DefaultDeadline, "how long the connector has to come Online (vaultpam.update_gate= on the kernel command line overrides it)")
	connSock := fs.String("connector-socket", localapi.DefaultSocket, "the connector's API socket")
	stateDir := fs.String("state-dir", state.DefaultDir, "update records")
	cmdline := fs.String("cmdline", "/proc/cmdline", "the kernel command line")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if d, ok := cmdlineDuration(*cmdline, "vaultpam.update_gate"); ok {
		*deadline = d
	}
	store, err := state.Open(*stateDir)
	if err != nil {
		return fail(env.Stderr, err, "")
	}
	g := &gate.Gate{
		Status: localapi.NewClient(*connSock).Status, Store: store, Deadline: *deadline,
		MarkBad: func(ctx context.Context) error {
			out, err := exec.CommandContext(ctx, blessBoot, "bad").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s bad: %v: %s", blessBoot, err, strings.TrimSpace(string(out)))
			}
			return nil
		},
		Logf: func(format string, args ...any) {
			fmt.Fprintf(env.Stderr, "vaultpam-update-gate: "+format+"\n", args...)
		},
		ESP: &esp.Dir{Path: esp.DefaultDir},
	}
	if n, err := slot.DefaultDisk().Running(); err == nil {
		g.Slot = string(n)
	}
	g.Version, _ = osVersion("/usr/lib/os-release")
	g.Entry, _ = esp.Vars{Dir: esp.DefaultVarsDir}.BootCountEntry()
	v, err := g.Run(ctx)
	if err != nil {
		fail(env.Stderr, err, "")
	}
	if !v.OK {
		fmt.Fprintf(env.Stderr, "vaultpam-update-gate: FAILED: %s\n", v.Reason)
		return exitError
	}
	fmt.Fprintf(env.Stderr, "vaultpam-update-gate: passed: %s\n", v.Reason)
	return exitOK
}

// cmdlineDuration reads key=DURATION from the kernel command line.
func cmdlineDuration(path, key string) (time.Duration, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				return d, true
			}
		}
	}
	return 0, false
}

func osVersion(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "IMAGE_VERSION="); ok {
			return strings.Trim(v, `"'`), nil
		}
	}
	return "", fmt.Errorf("%s names no IMAGE_VERSION", path)
}
