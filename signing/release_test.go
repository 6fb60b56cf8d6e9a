package signing

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/signing/sbom"
)

func releaseConfig(t *testing.T, dist, ova string) ReleaseConfig {
	t.Helper()
	return ReleaseConfig{
		DistDir:    dist,
		Files:      []string{ova},
		DpkgStatus: filepath.Join("sbom", "testdata", "status"),
		SBOM:       sbom.Config{Name: "vaultpam-connector", Version: "0.1.0", Created: time.Unix(1767225600, 0)},
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestSignReleaseDevKey(t *testing.T) {
	dist := t.TempDir()
	ova := filepath.Join(dist, "vaultpam-connector-0.1.0.ova")
	writeRandomFile(t, ova, 4<<20+1)
	cfg := releaseConfig(t, dist, ova)
	var warn bytes.Buffer
	cfg.Warn = &warn
	cfg.Password = EnvPassword(func(string) (string, bool) { return "", false }) // COSIGN_PASSWORD unset
	rel, err := SignRelease(context.Background(), cfg)
	if err != nil {
		t.Fatalf("SignRelease: %v", err)
	}
	if !rel.DevKey || !strings.Contains(warn.String(), "development key, not for release") {
		t.Errorf("DevKey = %v, warning %q: want a development-key warning", rel.DevKey, warn.String())
	}
	want := []string{"SHA256SUMS", "SHA256SUMS.sig", "cosign.key", "cosign.pub",
		"vaultpam-connector-0.1.0.ova", "vaultpam-connector-0.1.0.ova.sig", "vaultpam-connector-0.1.0.ova.sigstore.json",
		"vaultpam-connector-0.1.0.spdx.json", "vaultpam-connector-0.1.0.spdx.json.sig", "vaultpam-connector-0.1.0.spdx.json.sigstore.json"}
	if got := listDir(t, dist); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dist = %v\nwant %v", got, want)
	}
	st, err := os.Stat(filepath.Join(dist, "cosign.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("cosign.key mode = %v, %v; want 0600", st.Mode(), err)
	}
	pub, err := LoadPublicKey(filepath.Join(dist, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	checked, err := VerifyRelease(pub, dist)
	if err != nil {
		t.Fatalf("VerifyRelease: %v", err)
	}
	t.Logf("verified: %v", checked)
	otherPub, err := LoadPublicKey(filepath.Join(newKeyDir(t, ""), PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyRelease(otherPub, dist); !errors.Is(err, ErrSignatureMismatch) || !strings.Contains(err.Error(), "not the one that signed the release") {
		t.Errorf("VerifyRelease(another key) = %v, want ErrSignatureMismatch naming the key", err)
	}
	sums, _ := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	for _, n := range []string{"vaultpam-connector-0.1.0.ova", "vaultpam-connector-0.1.0.spdx.json", "cosign.pub"} {
		if !strings.Contains(string(sums), "  "+n+"\n") {
			t.Errorf("SHA256SUMS lacks %s:\n%s", n, sums)
		}
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
		cmd.Dir = dist
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
		}
	}

	// A second build reuses the development key.
	warn.Reset()
	rel2, err := SignRelease(context.Background(), cfg)
	if err != nil {
		t.Fatalf("second SignRelease: %v", err)
	}
	if !bytes.Equal(rel.PublicKeyPEM, rel2.PublicKeyPEM) || !strings.Contains(warn.String(), "reusing") {
		t.Errorf("second build did not reuse the development key (warning %q)", warn.String())
	}

	// The real cosign accepts the OVA, SHA256SUMS and the SBOM.
	cosign := cosignCLIOptional(t)
	if cosign == "" {
		return
	}
	for _, n := range []string{"vaultpam-connector-0.1.0.ova", "SHA256SUMS", "vaultpam-connector-0.1.0.spdx.json"} {
		out, err := runCosign(t, cosign, dist, "verify-blob", "--key", "cosign.pub", "--signature", n+".sig", "--insecure-ignore-tlog", n)
		if err != nil || !strings.Contains(out, "Verified OK") {
			t.Errorf("cosign verify-blob %s: %v\n%s", n, err, out)
		}
	}
}

func TestSignReleaseKeyFileCopiesArtifact(t *testing.T) {
	keys := newKeyDir(t, testPassword)
	build, dist := t.TempDir(), filepath.Join(t.TempDir(), "dist")
	ova := filepath.Join(build, "x.ova")
	writeRandomFile(t, ova, 1<<20)
	cfg := releaseConfig(t, dist, ova)
	cfg.Key = filepath.Join(keys, PrivateKeyFile)
	cfg.Password = EnvPassword(func(k string) (string, bool) { return testPassword, k == PasswordEnv })
	cfg.DpkgStatus = ""
	var warn bytes.Buffer
	cfg.Warn = &warn
	rel, err := SignRelease(context.Background(), cfg)
	if err != nil {
		t.Fatalf("SignRelease: %v", err)
	}
	if rel.DevKey || warn.Len() != 0 {
		t.Errorf("release key build: DevKey=%v warning=%q, want none", rel.DevKey, warn.String())
	}
	want := []string{"SHA256SUMS", "SHA256SUMS.sig", "cosign.pub", "x.ova", "x.ova.sig", "x.ova.sigstore.json"}
	if got := listDir(t, dist); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dist = %v, want %v (no private key in dist for a release key)", got, want)
	}
	pubPEM, _ := os.ReadFile(filepath.Join(keys, PublicKeyFile))
	if !bytes.Equal(pubPEM, rel.PublicKeyPEM) {
		t.Error("dist/cosign.pub differs from the key pair's public key")
	}
}

// TestSignReleaseFailuresLeaveNoSignatures: a wrong password, an unreadable
// key or an unknown KMS scheme fail clearly and leave no signature of an
// earlier build in dist.
func TestSignReleaseFailuresLeaveNoSignatures(t *testing.T) {
	keys := newKeyDir(t, testPassword)
	unreadable := filepath.Join(keys, "unreadable.key")
	if err := os.WriteFile(unreadable, []byte("-----BEGIN NOTHING-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key, password string
		wantErr             error
		wantMsg             string
	}{
		{"wrong password", filepath.Join(keys, PrivateKeyFile), "hunter2-not-it", ErrWrongPassword, "wrong password"},
		{"unreadable key", unreadable, testPassword, nil, "not PEM"},
		{"missing key", filepath.Join(keys, "nope.key"), testPassword, os.ErrNotExist, "reading private key"},
		{"unknown KMS scheme", "foo://bar", testPassword, ErrUnknownKeyScheme, "foo://"},
		{"malformed KMS reference", "gcpkms://nope", testPassword, ErrBadKMSReference, "gcpkms://projects/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dist := t.TempDir()
			ova := filepath.Join(dist, "x.ova")
			writeRandomFile(t, ova, 1<<16)
			// Outputs of an earlier (good) build, now stale.
			good := releaseConfig(t, dist, ova)
			good.Key = filepath.Join(keys, PrivateKeyFile)
			good.Password = StaticPassword([]byte(testPassword))
			if _, err := SignRelease(context.Background(), good); err != nil {
				t.Fatal(err)
			}
			flipByte(t, ova, 100) // the new build's OVA

			cfg := good
			cfg.Key, cfg.Password = tc.key, StaticPassword([]byte(tc.password))
			_, err := SignRelease(context.Background(), cfg)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("SignRelease = %v, want %v mentioning %q", err, tc.wantErr, tc.wantMsg)
			}
			if strings.Contains(err.Error(), tc.password) && tc.password != "" {
				t.Errorf("error %q contains the password", err)
			}
			for _, n := range listDir(t, dist) {
				if strings.HasSuffix(n, ".sig") || strings.HasSuffix(n, ".sigstore.json") || n == "SHA256SUMS" || strings.HasPrefix(n, ".vaultpam-sign") {
					t.Errorf("dist still holds %s after a failed signing", n)
				}
			}
		})
	}
}
