package main

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

	"github.com/vaultpam/appliance/appliance/ova"
	"github.com/vaultpam/appliance/signing"
	"github.com/vaultpam/appliance/signing/sbom"
)

// app is one invocation; tests run it in-process.
type app struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Args           []string
	LookupEnv      func(string) (string, bool)
	Now            func() time.Time
}

const usage = `usage:
  vaultpam-sign verify [--key cosign.pub] [DIR]
  vaultpam-sign verify-blob --key cosign.pub (--signature F.sig | --bundle F.sigstore.json) F
  vaultpam-sign generate-key-pair [--output-dir DIR]
  vaultpam-sign sign --dist DIR [--key REF] [--sbom-source dpkg-status --name N --version V] FILE...
  vaultpam-sign sbom --dpkg-status FILE --version V [--name N]
  vaultpam-sign update-init [--dist DIR] [--key REF] [--repo DIR] [--version V]
  vaultpam-sign update-refresh [--dist DIR] [--key REF] [--repo DIR]
  vaultpam-sign update-rotate --repo DIR --key OLD --new-key NEW
  vaultpam-sign update-iso [--dist DIR] [--key REF] [--repo DIR] FILE.update
The password of an encrypted key comes from COSIGN_PASSWORD (update-rotate's
--new-key: VAULTPAM_NEW_KEY_PASSWORD when set). An empty --key means the
development key pair in --dist (made when missing).
`

// errUsage marks a command-line mistake; the usage text follows it.
var errUsage = errors.New("usage")

func (a *app) run(ctx context.Context) int {
	if a.Now == nil {
		a.Now = time.Now
	}
	if len(a.Args) == 0 {
		fmt.Fprint(a.Stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string) error{
		"verify": a.verify, "verify-blob": a.verifyBlob, "generate-key-pair": a.generate,
		"sign": a.sign, "sbom": a.sbom,
		"update-init": a.updateInit, "update-refresh": a.updateRefresh, "update-rotate": a.updateRotate, "update-iso": a.updateISO,
	}
	switch a.Args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(a.Stdout, usage)
		return 0
	}
	cmd, ok := cmds[a.Args[0]]
	if !ok {
		fmt.Fprintf(a.Stderr, "vaultpam-sign: error: unknown command %q\n%s", a.Args[0], usage)
		return 2
	}
	err := cmd(ctx, a.Args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(a.Stderr, "vaultpam-sign: error: %v\n%s", err, usage)
		return 2
	}
	fmt.Fprintf(a.Stderr, "vaultpam-sign: error: %v\n", err)
	if h := hint(err); h != "" {
		fmt.Fprintf(a.Stderr, "hint: %s\n", h)
	}
	return 1
}

func hint(err error) string {
	switch {
	case errors.Is(err, signing.ErrDigestMismatch):
		return "the file is not the one that was signed: download it again and do not import it until this check passes"
	case errors.Is(err, signing.ErrWrongKey), errors.Is(err, signing.ErrSignatureMismatch):
		return "make sure cosign.pub is VaultPAM's release key, obtained separately from the download; do not import the file until this check passes"
	case errors.Is(err, signing.ErrBadSignature):
		return "the signature file is damaged: download it again"
	case errors.Is(err, signing.ErrNoPassword):
		return "export COSIGN_PASSWORD (empty for a key without password); it is never read from the command line"
	case errors.Is(err, signing.ErrWrongPassword):
		return "COSIGN_PASSWORD does not open this key"
	case errors.Is(err, ova.ErrManifestChanged), errors.Is(err, ova.ErrCertWrongKey), errors.Is(err, ova.ErrCertMalformed), errors.Is(err, ova.ErrArchive):
		return "the OVA's manifest or VMware .cert does not verify: do not import this OVA; if its cosign signature verified, it was built wrongly: report it to VaultPAM"
	case errors.Is(err, signing.ErrUnknownKeyScheme), errors.Is(err, signing.ErrBadKMSReference):
		return "use a cosign.key path or a KMS reference such as awskms:///alias/NAME"
	}
	return ""
}

func (a *app) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.Stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func (a *app) verify(_ context.Context, args []string) error {
	fs := a.flags("verify")
	key := fs.String("key", "", "public key (default DIR/cosign.pub; prefer one obtained separately)")
	if err := parse(fs, args); err != nil {
		return err
	}
	dir := "."
	switch fs.NArg() {
	case 0:
	case 1:
		dir = fs.Arg(0)
	default:
		return fmt.Errorf("%w: verify takes one directory", errUsage)
	}
	if *key == "" {
		*key = filepath.Join(dir, signing.PublicKeyFile)
	}
	pub, err := signing.LoadPublicKey(*key)
	if err != nil {
		return err
	}
	checked, err := signing.VerifyRelease(pub, dir)
	for _, c := range checked {
		fmt.Fprintf(a.Stdout, "OK  %s\n", c)
	}
	if err != nil {
		return err
	}
	n, err := a.verifyOVAs(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.Stdout, "Verified OK: %d checks in %s with %s\n", len(checked)+n, dir, *key)
	return nil
}

func (a *app) verifyBlob(_ context.Context, args []string) error {
	fs := a.flags("verify-blob")
	key := fs.String("key", "", "public key (cosign.pub)")
	sig := fs.String("signature", "", "base64 signature file (.sig)")
	bundle := fs.String("bundle", "", "sigstore bundle (.sigstore.json)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *key == "" || (*sig == "") == (*bundle == "") {
		return fmt.Errorf("%w: verify-blob needs --key, one of --signature or --bundle, and one file", errUsage)
	}
	pub, err := signing.LoadPublicKey(*key)
	if err != nil {
		return err
	}
	if *sig != "" {
		err = signing.VerifySigFile(pub, fs.Arg(0), *sig, signing.VerifyOptions{})
	} else {
		err = signing.VerifyBundleFile(pub, fs.Arg(0), *bundle)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(a.Stdout, "Verified OK")
	return nil
}

func (a *app) generate(_ context.Context, args []string) error {
	fs := a.flags("generate-key-pair")
	dir := fs.String("output-dir", ".", "where to write cosign.key and cosign.pub")
	if err := parse(fs, args); err != nil {
		return err
	}
	kp, err := signing.GenerateKeyPair(signing.EnvPassword(a.LookupEnv))
	if err != nil {
		return err
	}
	if err := signing.WriteKeyPair(*dir, kp); err != nil {
		return err
	}
	fmt.Fprintf(a.Stdout, "Private key written to %s\nPublic key written to %s\n",
		filepath.Join(*dir, signing.PrivateKeyFile), filepath.Join(*dir, signing.PublicKeyFile))
	return nil
}

func (a *app) sbomConfig(name, version string) (sbom.Config, error) {
	sde, _ := a.LookupEnv("SOURCE_DATE_EPOCH")
	created, err := signing.SourceDateEpoch(sde, a.Now)
	if err != nil {
		return sbom.Config{}, err
	}
	v := "v" + strings.TrimPrefix(version, "v")
	return sbom.Config{Name: name, Version: version, Created: created, Tool: "vaultpam-sign",
		Components: []sbom.Component{{Name: "github.com/vaultpam/appliance", Version: v, PURL: "pkg:golang/github.com/vaultpam/appliance@" + v}}}, nil
}

func (a *app) sign(ctx context.Context, args []string) error {
	fs := a.flags("sign")
	key := fs.String("key", "", "cosign.key path or KMS reference (empty: development key in --dist)")
	dist := fs.String("dist", "", "output directory")
	src := fs.String("sbom-source", "", "the image's dpkg status file (build/dpkg-status)")
	name := fs.String("name", "vaultpam-connector", "image name (SBOM file name)")
	version := fs.String("version", "", "image version")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dist == "" || fs.NArg() == 0 {
		return fmt.Errorf("%w: sign needs --dist and at least one file", errUsage)
	}
	sc, err := a.sbomConfig(*name, *version)
	if err != nil {
		return err
	}
	rel, err := signing.SignRelease(ctx, signing.ReleaseConfig{
		Key: *key, Password: signing.EnvPassword(a.LookupEnv), DistDir: *dist, Files: fs.Args(),
		DpkgStatus: *src, SBOM: sc, Warn: a.Stderr,
	})
	if err != nil {
		return err
	}
	for _, f := range rel.Files {
		fmt.Fprintf(a.Stdout, "wrote %s\n", filepath.Join(*dist, f))
	}
	return nil
}

func (a *app) sbom(_ context.Context, args []string) error {
	fs := a.flags("sbom")
	src := fs.String("dpkg-status", "", "dpkg status file")
	name := fs.String("name", "vaultpam-connector", "image name")
	version := fs.String("version", "", "image version")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *src == "" {
		return fmt.Errorf("%w: sbom needs --dpkg-status", errUsage)
	}
	f, err := os.Open(*src)
	if err != nil {
		return err
	}
	defer f.Close()
	pkgs, err := sbom.ParseDpkgStatus(f)
	if err != nil {
		return err
	}
	sc, err := a.sbomConfig(*name, *version)
	if err != nil {
		return err
	}
	doc, err := sbom.SPDX(pkgs, sc)
	if err != nil {
		return err
	}
	_, err = a.Stdout.Write(doc)
	return err
}
