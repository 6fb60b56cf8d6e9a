package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/signing"
	"github.com/vaultpam/appliance/update/bundle"
	"github.com/vaultpam/appliance/update/release"
	"github.com/vaultpam/appliance/update/trust"
)

func runAppAt(t *testing.T, now time.Time, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Args: args, Now: func() time.Time { return now },
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	code = a.run(context.Background())
	return code, out.String(), errb.String()
}

// publish writes a bundle of version from random parts into dist and
// lists it in dist/update-repo signed with key, as `make ova` does.
func publish(t *testing.T, dist, key, version string) *release.Bundle {
	t.Helper()
	dir := t.TempDir()
	s := release.Slot{Version: version, RootHash: strings.Repeat("7e", 32), VerityUUID: "0e4b7f2a-1c2d-8e3f-9a4b-5c6d7e8f9a0b", SourceDateEpoch: 1767225600,
		Root: filepath.Join(dir, "root"), Verity: filepath.Join(dir, "verity"), UKI: filepath.Join(dir, "uki")}
	for _, p := range []string{s.Root, s.Verity, s.UKI} {
		f, _ := os.Create(p)
		io.CopyN(f, rand.Reader, 300<<10)
		f.Close()
	}
	b, err := release.WriteBundle(filepath.Join(dist, release.BundleName("vaultpam-connector", version)), s)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signing.LoadSigner(context.Background(), key, signing.StaticPassword(nil))
	if err != nil {
		t.Fatal(err)
	}
	repo := &trust.Repo{Dir: filepath.Join(dist, "update-repo"), Signer: sv}
	if err := repo.Init(); err != nil {
		t.Fatalf("publishing %s with %s: %v", version, key, err)
	}
	if err := release.Publish(repo, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func isoExtract(t *testing.T, iso, path string) []byte {
	t.Helper()
	out, err := exec.Command("isoinfo", "-J", "-i", iso, "-x", path).Output()
	if err != nil {
		t.Fatalf("isoinfo -x %s: %v", path, err)
	}
	return out
}

// TestUpdateRotate: the release key is rotated with update-rotate; an
// appliance whose image baked in root 1 accepts an update ISO made after
// the rotation (signed with the new key only), and the old key can no
// longer sign for the repository.
func TestUpdateRotate(t *testing.T) {
	for _, tool := range []string{"genisoimage", "isoinfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian package genisoimage; make deps)", tool)
		}
	}
	now := time.Now()
	dir := t.TempDir()
	dist, keys := filepath.Join(dir, "dist"), filepath.Join(dir, "new-key")
	os.Mkdir(keys, 0o700)
	env := map[string]string{"COSIGN_PASSWORD": ""} // the development key's empty password

	code, stdout, stderr := runAppAt(t, now, env, "update-init", "--dist", dist, "--version", "0.1.0")
	if code != 0 || !strings.Contains(stdout, "root version 1, signed with the DEVELOPMENT key") || !strings.Contains(stderr, "development key, not for release") {
		t.Fatalf("update-init = %d\n%s%s", code, stdout, stderr)
	}
	baked, err := os.ReadFile(filepath.Join(dist, "update-repo", "root.json")) // what the 0.1.0 image carries
	if err != nil {
		t.Fatal(err)
	}
	oldKey := filepath.Join(dist, "cosign.key")
	publish(t, dist, oldKey, "0.1.0")
	// A second build into the same dist keeps the root.
	if code, _, stderr := runAppAt(t, now, env, "update-init", "--dist", dist); code != 0 {
		t.Fatalf("update-init again = %d: %s", code, stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(dist, "update-repo", "root.json")); !bytes.Equal(again, baked) {
		t.Error("update-init changed an existing root")
	}

	if code, _, stderr := runAppAt(t, now, env, "generate-key-pair", "--output-dir", keys); code != 0 {
		t.Fatalf("generate-key-pair = %d: %s", code, stderr)
	}
	newKey := filepath.Join(keys, "cosign.key")
	code, stdout, stderr = runAppAt(t, now, env, "update-rotate", "--repo", filepath.Join(dist, "update-repo"), "--key", oldKey, "--new-key", newKey)
	if code != 0 || !strings.Contains(stdout, "root version 2 trusts only the new key") {
		t.Fatalf("update-rotate = %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("update-rotate:\n%s", stdout)

	// 0.2.0 is released with the new key: bundle, signature, ISO.
	b := publish(t, dist, newKey, "0.2.0")
	if code, _, stderr := runAppAt(t, now, env, "sign", "--dist", dist, "--key", newKey, b.Path); code != 0 {
		t.Fatalf("sign = %d: %s", code, stderr)
	}
	code, stdout, stderr = runAppAt(t, now, env, "update-iso", "--dist", dist, "--key", newKey, b.Path)
	if code != 0 {
		t.Fatalf("update-iso = %d\n%s%s", code, stdout, stderr)
	}
	iso := filepath.Join(dist, "vaultpam-connector-0.2.0-update.iso")
	if !strings.Contains(stdout, "wrote "+iso) {
		t.Errorf("update-iso output lacks the ISO:\n%s", stdout)
	}

	// The appliance with root 1 baked in reads the ISO.
	md := t.TempDir()
	for _, n := range []string{"1.root.json", "2.root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		os.WriteFile(filepath.Join(md, n), isoExtract(t, iso, "/"+release.ISOMetadataDir+"/"+n), 0o644)
	}
	v := &trust.Verifier{BakedRoot: baked, StateDir: t.TempDir(), Now: func() time.Time { return now }}
	tgt, err := v.Target(md, filepath.Base(b.Path))
	if err != nil {
		t.Fatalf("appliance with root 1: %v", err)
	}
	if v.RootVersion() != 2 || tgt.Custom.Version != "0.2.0" {
		t.Errorf("root version %d, target %+v", v.RootVersion(), tgt)
	}
	if _, err := bundle.Check(bytes.NewReader(isoExtract(t, iso, "/"+release.ISODir+"/"+filepath.Base(b.Path))), tgt.Custom.ManifestSHA256); err != nil {
		t.Errorf("bundle from the ISO: %v", err)
	}
	// Without 2.root.json the new signatures mean nothing to it.
	os.Remove(filepath.Join(md, "2.root.json"))
	v2 := &trust.Verifier{BakedRoot: baked, StateDir: t.TempDir(), Now: func() time.Time { return now }}
	if _, err := v2.Target(md, filepath.Base(b.Path)); !errors.Is(err, trust.ErrUntrusted) {
		t.Errorf("metadata without 2.root.json = %v, want ErrUntrusted", err)
	}

	// The old (development) key no longer speaks for the repository.
	code, _, stderr = runAppAt(t, now, env, "update-refresh", "--dist", dist)
	if code != 1 || !strings.Contains(stderr, "does not trust the signing key") {
		t.Errorf("update-refresh with the rotated-out key = %d: %s", code, stderr)
	}
	// The SHA256SUMS of dist lists the ISO and the bundle, signed with the new key.
	pub, _ := signing.LoadPublicKey(filepath.Join(keys, "cosign.pub"))
	if checked, err := signing.VerifyRelease(pub, dist); err != nil {
		t.Errorf("VerifyRelease(dist) = %v", err)
	} else if s := strings.Join(checked, " "); !strings.Contains(s, "vaultpam-connector-0.2.0-update.iso.sig") || !strings.Contains(s, "vaultpam-connector-0.2.0.update.sig") {
		t.Errorf("SHA256SUMS does not cover the ISO and the bundle: %s", s)
	}
}

// TestUpdateRefresh: the timestamp lasts 30 days; update-refresh re-signs
// it, and an offer judged after the old expiry verifies again.
func TestUpdateRefresh(t *testing.T) {
	now := time.Now()
	dist := filepath.Join(t.TempDir(), "dist")
	env := map[string]string{"COSIGN_PASSWORD": ""}
	if code, _, stderr := runAppAt(t, now, env, "update-init", "--dist", dist); code != 0 {
		t.Fatalf("update-init = %d: %s", code, stderr)
	}
	repo := filepath.Join(dist, "update-repo")
	baked, _ := os.ReadFile(filepath.Join(repo, "root.json"))
	b := publish(t, dist, filepath.Join(dist, "cosign.key"), "0.2.0")
	later := now.Add(trust.TimestampLifetime + 24*time.Hour)
	v := &trust.Verifier{BakedRoot: baked, StateDir: t.TempDir(), Now: func() time.Time { return later }}
	if _, err := v.Target(repo, filepath.Base(b.Path)); !errors.Is(err, trust.ErrExpired) {
		t.Fatalf("31 days later = %v, want ErrExpired", err)
	}
	if code, _, stderr := runAppAt(t, now, env, "update-refresh", "--dist", filepath.Join(t.TempDir(), "elsewhere"), "--repo", filepath.Join(dist, "nothing")); code != 1 || !strings.Contains(stderr, "no update repository") {
		t.Errorf("update-refresh of no repository = %d: %s", code, stderr)
	}
	code, stdout, stderr := runAppAt(t, later.Add(-time.Hour), env, "update-refresh", "--dist", dist)
	if code != 0 || !strings.Contains(stdout, "timestamp re-signed, valid until") {
		t.Fatalf("update-refresh = %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("update-refresh:\n%s", stdout)
	v = &trust.Verifier{BakedRoot: baked, StateDir: t.TempDir(), Now: func() time.Time { return later }}
	if _, err := v.Target(repo, filepath.Base(b.Path)); err != nil {
		t.Errorf("after update-refresh = %v", err)
	}
}

func TestUpdateUsage(t *testing.T) {
	dist := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"update-init", "--dist", dist, "--version", "0.2.0-rc1"}, 1, "plain MAJOR.MINOR.PATCH"},
		{[]string{"update-rotate", "--repo", dist}, 2, "update-rotate needs --repo, --key and --new-key"},
		{[]string{"update-iso", "--dist", dist}, 2, "update-iso takes one .update file"},
		{[]string{"update-refresh", "--dist", dist}, 1, "no update repository at " + filepath.Join(dist, "update-repo")},
	} {
		code, _, stderr := runAppAt(t, time.Now(), map[string]string{"COSIGN_PASSWORD": ""}, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("vaultpam-sign %v = %d, stderr %q; want %d containing %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}
