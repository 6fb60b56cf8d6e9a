package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/vaultpam/appliance/deploy/nativepkg"
	"github.com/vaultpam/appliance/deploy/oci"
	"github.com/vaultpam/appliance/signing"
)

// Env is the outside world of one invocation; tests fill it in.
type Env struct {
	Stdout, Stderr io.Writer
	Args           []string
	Getenv         func(string) string
	LookupEnv      func(string) (string, bool)
}

const usage = `usage: vaultpam-packages build [flags]

Builds into --dist: vaultpam-connector_<v>_amd64.deb, vaultpam-connector-<v>-1.x86_64.rpm and
vaultpam-connector-<v>.oci.tar, each signed (.sig, .sigstore.json) and listed in dist's SHA256SUMS
together with whatever else in dist was signed with the same key (the OVA of make ova).

flags:
`

// Main runs one command and returns the exit code: 0 built and signed,
// 1 failed, 2 usage.
func Main(ctx context.Context, env Env) int {
	if len(env.Args) == 0 || env.Args[0] != "build" {
		if len(env.Args) > 0 && (env.Args[0] == "help" || env.Args[0] == "-h" || env.Args[0] == "--help") {
			fmt.Fprint(env.Stdout, usage)
			newFlags(env.Stdout).fs.PrintDefaults()
			return 0
		}
		fmt.Fprint(env.Stderr, usage)
		return 2
	}
	f := newFlags(env.Stderr)
	if err := f.fs.Parse(env.Args[1:]); err != nil {
		return 2
	}
	if err := build(ctx, env, f); err != nil {
		fmt.Fprintf(env.Stderr, "vaultpam-packages: error: %v\n", err)
		if h := hint(err); h != "" {
			fmt.Fprintf(env.Stderr, "hint: %s\n", h)
		}
		return 1
	}
	return 0
}

type flags struct {
	fs                                       *flag.FlagSet
	connector, unit, version, dist, work, ca *string
	key, repository                          *string
}

func newFlags(w io.Writer) *flags {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(w)
	return &flags{fs: fs,
		connector:  fs.String("connector", "", "the static connector binary (CGO_ENABLED=0); required"),
		unit:       fs.String("unit", "", "the connector's hardened systemd unit; required"),
		version:    fs.String("version", "", "package and image version; required"),
		dist:       fs.String("dist", "dist", "output directory, shared with make ova"),
		work:       fs.String("work", "", "scratch directory (default: a temporary one)"),
		ca:         fs.String("ca-bundle", oci.DefaultConfig().CABundle, "PEM CA bundle for the image"),
		key:        fs.String("key", "", "signing key: cosign key file or KMS reference (default: the development key in --dist)"),
		repository: fs.String("repository", oci.DefaultConfig().Repository, "image name recorded in the tarball"),
	}
}

// errConfig marks problems with the flags, for the hint.
var errConfig = errors.New("configuration")

func build(ctx context.Context, env Env, f *flags) error {
	created, err := signing.SourceDateEpoch(env.Getenv("SOURCE_DATE_EPOCH"), time.Now)
	if err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}
	nc := nativepkg.DefaultConfig()
	nc.Binary, nc.Unit, nc.Version, nc.MTime = *f.connector, *f.unit, *f.version, created
	oc := oci.DefaultConfig()
	oc.Binary, oc.CABundle, oc.Version, oc.Created, oc.Repository = *f.connector, *f.ca, *f.version, created, *f.repository
	work := *f.work
	if work == "" {
		if work, err = os.MkdirTemp("", "vaultpam-packages-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	nc.OutDir = work
	if err := errors.Join(nc.Validate(), oc.Validate()); err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}

	start := time.Now()
	pkgs, err := nativepkg.Build(nc)
	if err != nil {
		return err
	}
	img, err := oci.WriteArchive(oc, filepath.Join(work, oci.FileName(oc.Version)))
	if err != nil {
		return err
	}
	for _, p := range pkgs {
		report(env.Stdout, p, "")
	}
	report(env.Stdout, img.Path, fmt.Sprintf(" image %s, manifest digest %s", oc.Ref(), img.Digest))
	fmt.Fprintf(env.Stdout, "built in %s\n", time.Since(start).Round(time.Millisecond))

	rel, err := signing.SignRelease(ctx, signing.ReleaseConfig{
		Key:        *f.key,
		Password:   signing.EnvPassword(env.LookupEnv),
		DistDir:    *f.dist,
		Files:      append(pkgs, img.Path),
		Warn:       env.Stderr,
		KeepSigned: true,
	})
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	for _, n := range rel.Files {
		fmt.Fprintf(env.Stdout, "wrote %s\n", filepath.Join(*f.dist, n))
	}
	fmt.Fprintf(env.Stdout, "verify with: cd %s && cosign verify-blob --key cosign.pub --signature SHA256SUMS.sig --insecure-ignore-tlog SHA256SUMS && sha256sum -c SHA256SUMS\n", *f.dist)
	return nil
}

func report(w io.Writer, p, extra string) {
	size := int64(0)
	if st, err := os.Stat(p); err == nil {
		size = st.Size()
	}
	fmt.Fprintf(w, "built %s (%.1f MiB)%s\n", filepath.Base(p), float64(size)/(1<<20), extra)
}

func hint(err error) string {
	switch {
	case errors.Is(err, errConfig):
		return "run it through `make packages`, which builds the static connector and passes the unit and version"
	case errors.Is(err, signing.ErrNoPassword):
		return "export COSIGN_PASSWORD with the key's password"
	case errors.Is(err, signing.ErrWrongPassword):
		return "COSIGN_PASSWORD does not open this key; for the development key in dist/, delete dist/cosign.key and dist/cosign.pub to make a new one"
	}
	return ""
}
