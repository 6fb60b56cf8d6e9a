package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/vaultpam/appliance/connector/localapi"
)

func cmdStatus(ctx context.Context, env Env, args []string) int {
	fs := newFlags(env, "status")
	asJSON := fs.Bool("json", false, "print the status JSON")
	sock := fs.String("socket", localapi.UpdaterSocket, "the updater's API socket")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	im, err := localapi.NewUpdaterClient(*sock).Status(ctx)
	if err != nil {
		return fail(env.Stderr, err, "is vaultpam-update.service running? (the console's L key shows its log)")
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(im)
		return exitOK
	}
	printImage(env.Stdout, im)
	return exitOK
}

func printImage(w io.Writer, im localapi.Image) {
	fmt.Fprintf(w, "image:    %s in slot %s\n", im.Version, im.Slot)
	if o := im.Other; o != nil {
		v := o.Version
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(w, "slot %s:   %s (%s)\n", o.Slot, v, o.State)
	}
	if u := im.Update; u != nil {
		fmt.Fprintf(w, "update:   %s %s", u.Version, u.State)
		if u.Source != "" {
			fmt.Fprintf(w, " (from %s)", u.Source)
		}
		fmt.Fprintln(w)
		if u.Reason != "" {
			fmt.Fprintf(w, "          %s\n", u.Reason)
		}
	}
	if a := im.Available; a != nil {
		fmt.Fprintf(w, "available: %s on the %s\n", a.Version, a.Source)
	}
	fmt.Fprintf(w, "pending:  %v\n", im.Pending)
}

func cmdInstall(ctx context.Context, env Env, args []string) int {
	fs := newFlags(env, "install")
	dir := fs.String("dir", "", "the directory with the signed metadata and the bundle (under /data/update/incoming)")
	target := fs.String("target", "", "the bundle's name in the signed metadata")
	cdrom := fs.Bool("cdrom", false, "install the update on the CD-ROM")
	downgrade := fs.Bool("confirm-downgrade", false, "allow a version not newer than the running one")
	sock := fs.String("socket", localapi.UpdaterSocket, "the updater's API socket")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	req := localapi.InstallRequest{Source: "control_plane", Dir: *dir, Target: *target, ConfirmDowngrade: *downgrade}
	if *cdrom {
		req = localapi.InstallRequest{Source: "cdrom", ConfirmDowngrade: *downgrade}
	}
	if err := localapi.NewUpdaterClient(*sock).Install(ctx, req); err != nil {
		return fail(env.Stderr, err, "")
	}
	fmt.Fprintln(env.Stdout, "install started; `vaultpam-update status` shows its progress")
	return exitOK
}

func cmdRollback(ctx context.Context, env Env, args []string) int {
	fs := newFlags(env, "rollback")
	confirm := fs.Bool("confirm", false, "yes, reboot into the other slot's image")
	sock := fs.String("socket", localapi.UpdaterSocket, "the updater's API socket")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if err := localapi.NewUpdaterClient(*sock).Rollback(ctx, localapi.RollbackRequest{Confirm: *confirm}); err != nil {
		return fail(env.Stderr, err, "")
	}
	fmt.Fprintln(env.Stdout, "rolling back: the appliance reboots into the other slot")
	return exitOK
}
