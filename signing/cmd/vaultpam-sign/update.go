package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vaultpam/appliance/signing"
	"github.com/vaultpam/appliance/update/release"
	"github.com/vaultpam/appliance/update/trust"
	"github.com/vaultpam/appliance/update/version"
)

// The update repository chores (update/README.md, "Keys"): the repository
// is signed with the release key, the same one that makes the cosign
// signatures; an empty --key means the development key in --dist.

// NewKeyPasswordEnv holds the password of update-rotate's --new-key when
// it differs from the old key's (COSIGN_PASSWORD).
const NewKeyPasswordEnv = "VAULTPAM_NEW_KEY_PASSWORD"

// releaseRepo opens the repository with the release key.
func (a *app) releaseRepo(ctx context.Context, key, dist, repo string) (*trust.Repo, bool, error) {
	sv, dev, err := signing.ReleaseKey(ctx, key, signing.EnvPassword(a.LookupEnv), dist, a.Stderr)
	if err != nil {
		return nil, dev, err
	}
	if repo == "" {
		repo = filepath.Join(dist, "update-repo")
	}
	return &trust.Repo{Dir: repo, Signer: sv, Now: a.Now}, dev, nil
}

func (a *app) updateInit(ctx context.Context, args []string) error {
	fs := a.flags("update-init")
	dist := fs.String("dist", "dist", "release directory (the development key lives here)")
	key := fs.String("key", "", "release key: cosign.key path or KMS reference (empty: development key in --dist)")
	repo := fs.String("repo", "", "update repository (default DIST/update-repo)")
	ver := fs.String("version", "", "the version about to be built; checked to be x.y.z")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: update-init takes no arguments", errUsage)
	}
	if *ver != "" {
		if _, err := version.Parse(*ver); err != nil {
			return fmt.Errorf("%w: appliance versions are plain MAJOR.MINOR.PATCH (systemd-boot and the updater order them that way)", err)
		}
	}
	r, dev, err := a.releaseRepo(ctx, *key, *dist, *repo)
	if err != nil {
		return err
	}
	if err := r.Init(); err != nil {
		return err
	}
	n, err := rootVersion(r)
	if err != nil {
		return err
	}
	which := "release key"
	if dev {
		which = "DEVELOPMENT key"
	}
	fmt.Fprintf(a.Stdout, "update repository %s: root version %d, signed with the %s\nimages bake in %s\n",
		r.Dir, n, which, filepath.Join(r.Dir, "root.json"))
	return nil
}

func (a *app) updateRotate(ctx context.Context, args []string) error {
	fs := a.flags("update-rotate")
	repo := fs.String("repo", "", "update repository (dist/update-repo)")
	key := fs.String("key", "", "the key the repository's root trusts now (cosign.key path or KMS reference)")
	newKey := fs.String("new-key", "", "the key to trust from now on (cosign.key path or KMS reference)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *repo == "" || *key == "" || *newKey == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: update-rotate needs --repo, --key and --new-key", errUsage)
	}
	old, err := signing.LoadSigner(ctx, *key, signing.EnvPassword(a.LookupEnv))
	if err != nil {
		return fmt.Errorf("the current key: %w", err)
	}
	next, err := signing.LoadSigner(ctx, *newKey, a.newKeyPassword())
	if err != nil {
		return fmt.Errorf("the new key: %w", err)
	}
	r := &trust.Repo{Dir: *repo, Signer: old, Now: a.Now}
	if _, err := r.RootBytes(); err != nil {
		return fmt.Errorf("no update repository at %s: %w", r.Dir, err)
	}
	if err := r.Init(); err != nil { // an existing root: checks it trusts --key
		return err
	}
	if err := r.Rotate(next); err != nil {
		return fmt.Errorf("rotating the update key: %w", err)
	}
	n, err := rootVersion(r)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.Stdout, "update repository %s: root version %d trusts only the new key (signed by the old and the new one)\n"+
		"from now on build releases with the new key (make ova SIGNING_KEY=%s); appliances switch once they are shown %d.root.json\n",
		r.Dir, n, *newKey, n)
	return nil
}

// newKeyPassword is VAULTPAM_NEW_KEY_PASSWORD when set, else
// COSIGN_PASSWORD.
func (a *app) newKeyPassword() signing.PasswordFunc {
	if _, ok := a.LookupEnv(NewKeyPasswordEnv); ok {
		return func() ([]byte, error) { v, _ := a.LookupEnv(NewKeyPasswordEnv); return []byte(v), nil }
	}
	return signing.EnvPassword(a.LookupEnv)
}

func (a *app) updateRefresh(ctx context.Context, args []string) error {
	fs := a.flags("update-refresh")
	dist := fs.String("dist", "dist", "release directory (the development key lives here)")
	key := fs.String("key", "", "release key: cosign.key path or KMS reference (empty: development key in --dist)")
	repo := fs.String("repo", "", "update repository (default DIST/update-repo)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: update-refresh takes no arguments", errUsage)
	}
	r, _, err := a.releaseRepo(ctx, *key, *dist, *repo)
	if err != nil {
		return err
	}
	if _, err := r.RootBytes(); err != nil {
		return fmt.Errorf("no update repository at %s: %w (hint: make ova or vaultpam-sign update-init creates it)", r.Dir, err)
	}
	if err := r.Init(); err != nil { // an existing root: checks it trusts the key
		return err
	}
	if err := r.Refresh(); err != nil {
		return fmt.Errorf("re-signing the timestamp: %w (hint: a bundle must have been published into %s first)", err, r.Dir)
	}
	fmt.Fprintf(a.Stdout, "update repository %s: timestamp re-signed, valid until %s; run this again within %d days\n"+
		"update ISOs made before carry the old timestamp: remake them with vaultpam-sign update-iso\n",
		r.Dir, a.Now().UTC().Add(trust.TimestampLifetime).Format(time.DateTime+" MST"), int(trust.TimestampLifetime.Hours()/24))
	return nil
}

func (a *app) updateISO(ctx context.Context, args []string) error {
	fs := a.flags("update-iso")
	dist := fs.String("dist", "dist", "release directory: the ISO, its signature and SHA256SUMS go here")
	key := fs.String("key", "", "release key: cosign.key path or KMS reference (empty: development key in --dist)")
	repo := fs.String("repo", "", "update repository (default DIST/update-repo)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: update-iso takes one .update file (its .sig beside it)", errUsage)
	}
	bundlePath := fs.Arg(0)
	if *repo == "" {
		*repo = filepath.Join(*dist, "update-repo")
	}
	t, err := targetOf(*repo, bundlePath)
	if err != nil {
		return err
	}
	out := filepath.Join(*dist, release.ISOName(trimUpdate(bundlePath, t.Custom.Version), t.Custom.Version))
	if err := release.WriteISO(ctx, release.ISO{Out: out, RepoDir: *repo, Bundle: bundlePath, Signature: bundlePath + signing.SigSuffix}); err != nil {
		return err
	}
	rel, err := signing.SignRelease(ctx, signing.ReleaseConfig{
		Key: *key, Password: signing.EnvPassword(a.LookupEnv), DistDir: *dist, Files: []string{out}, Warn: a.Stderr, KeepSigned: true,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.Stdout, "wrote %s\n", out)
	for _, f := range rel.Files {
		fmt.Fprintf(a.Stdout, "wrote %s\n", filepath.Join(*dist, f))
	}
	return nil
}

// targetOf returns the repository's (verified) entry for the bundle file.
func targetOf(repo, bundlePath string) (*trust.Target, error) {
	r := &trust.Repo{Dir: repo}
	root, err := r.RootBytes()
	if err != nil {
		return nil, fmt.Errorf("update repository %s: %w", repo, err)
	}
	state, err := os.MkdirTemp("", "vaultpam-sign-update-iso-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(state)
	v := &trust.Verifier{BakedRoot: root, StateDir: state}
	return v.Target(repo, filepath.Base(bundlePath))
}

// trimUpdate returns the product name of NAME-VERSION.update.
func trimUpdate(bundlePath, ver string) string {
	b := filepath.Base(bundlePath)
	suffix := "-" + ver + ".update"
	if len(b) > len(suffix) && b[len(b)-len(suffix):] == suffix {
		return b[:len(b)-len(suffix)]
	}
	return "vaultpam-connector"
}

// rootVersion reads the version of the repository's newest root.
func rootVersion(r *trust.Repo) (int64, error) {
	b, err := r.RootBytes()
	if err != nil {
		return 0, err
	}
	var m struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, fmt.Errorf("reading %s: %w", filepath.Join(r.Dir, "root.json"), err)
	}
	return m.Signed.Version, nil
}
