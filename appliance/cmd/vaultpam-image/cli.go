package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/vaultpam/appliance/appliance/image"
)

// version is set by the Makefile (-X main.version=…).
var version = "0.0.0"

// cli is the outside world of one invocation.
type cli struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Args           []string
}

const usage = `usage: vaultpam-image build [flags]

Builds the appliance's raw disk image: OUT/disk.raw, OUT/image.json and
OUT/dpkg-status. Needs root and the Debian tools of appliance/README.md.

flags:
`

// run executes the command line and returns the exit code.
func run(ctx context.Context, c cli) int {
	if len(c.Args) == 0 || c.Args[0] != "build" {
		if len(c.Args) > 0 && (c.Args[0] == "-h" || c.Args[0] == "--help" || c.Args[0] == "help") {
			fmt.Fprint(c.Stdout, usage)
			o := image.DefaultOptions()
			o.Rootfs.Version = version
			fs, _, _ := newFlags(c.Stdout, &o)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintln(c.Stderr, "vaultpam-image: error: missing or unknown command")
		fmt.Fprintln(c.Stderr, "hint: run `vaultpam-image build --bin bin --out build --version X.Y.Z`")
		return 2
	}
	o := image.DefaultOptions()
	o.Rootfs.Version = version
	fs, cache, work := newFlags(c.Stderr, &o)
	if err := fs.Parse(c.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o.Rootfs.CacheDir = filepath.Join(o.OutDir, "cache")
	if *cache != "" {
		o.Rootfs.CacheDir = *cache
	}
	o.Rootfs.WorkDir = filepath.Join(o.OutDir, "work")
	if *work != "" {
		o.Rootfs.WorkDir = *work
	}
	o.Logf = func(format string, args ...any) {
		fmt.Fprintf(c.Stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(c.Stderr, "vaultpam-image: error: %v\n", err)
		fmt.Fprintln(c.Stderr, "hint: see `vaultpam-image build --help`")
		return 2
	}
	res, err := image.Build(ctx, o)
	if err != nil {
		fmt.Fprintf(c.Stderr, "vaultpam-image: error: %v\n", err)
		fmt.Fprintln(c.Stderr, "hint: run as root with the packages of `make deps`; a half-built package stage is never cached, so just run it again")
		return 1
	}
	fmt.Fprintf(c.Stdout, "disk %s\nroot_sha256 %s\nroot_size %d\nroot_hash %s\nmanifest %s\nbuild_time %s\n",
		res.Disk, res.Image.RootSHA256, res.Image.RootSize, res.Image.RootHash, res.Manifest, res.Duration.Round(time.Second))
	return 0
}

// newFlags declares the build flags over o; cache and work are the two
// directories whose defaults depend on -out.
func newFlags(out io.Writer, o *image.Options) (fs *flag.FlagSet, cache, work *string) {
	fs = flag.NewFlagSet("vaultpam-image build", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.Rootfs.BinDir, "bin", o.Rootfs.BinDir, "`dir` with vaultpam-connector and vaultpam-console")
	fs.StringVar(&o.OutDir, "out", o.OutDir, "output `dir`")
	fs.StringVar(&o.Rootfs.Version, "version", o.Rootfs.Version, "appliance `version`")
	fs.Int64Var(&o.Rootfs.SourceDateEpoch, "source-date-epoch", o.Rootfs.SourceDateEpoch, "timestamp of every file (default $SOURCE_DATE_EPOCH)")
	fs.StringVar(&o.Rootfs.Mirror, "mirror", o.Rootfs.Mirror, "Debian mirror `URL` (a snapshot pins package versions)")
	fs.StringVar(&o.ExtraCmdline, "extra-cmdline", "", "`args` appended to the kernel command line")
	fs.StringVar(&o.Rootfs.UpdateRoot, "update-root", "", "TUF root `file` of the release repository baked in as the updater's trust anchor (dist/update-repo/root.json; vaultpam-sign update-init makes it)")
	cache = fs.String("cache", "", "package-stage cache `dir` (default OUT/cache)")
	work = fs.String("work", "", "scratch `dir` (default OUT/work)")
	return fs, cache, work
}
