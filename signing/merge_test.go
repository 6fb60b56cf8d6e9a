package signing

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two builds sign into one dist directory (make ova, then make packages,
// or the other way round): the last SHA256SUMS lists the artifacts of
// both, and the release verifies as a whole. A file signed with another
// key is left out, with a warning that says so.
func TestKeepSignedMergesBuilds(t *testing.T) {
	dist := t.TempDir()
	noPassword := EnvPassword(func(string) (string, bool) { return "", false })
	ova := filepath.Join(dist, "vaultpam-connector-0.1.0.ova")
	writeRandomFile(t, ova, 1<<20)
	first := releaseConfig(t, dist, ova)
	first.Password, first.KeepSigned = noPassword, true
	if _, err := SignRelease(context.Background(), first); err != nil {
		t.Fatal(err)
	}

	other := t.TempDir() // the packages are built elsewhere and copied in
	deb := filepath.Join(other, "vaultpam-connector_0.1.0_amd64.deb")
	rpm := filepath.Join(other, "vaultpam-connector-0.1.0-1.x86_64.rpm")
	writeRandomFile(t, deb, 1000)
	writeRandomFile(t, rpm, 1000)
	second := ReleaseConfig{DistDir: dist, Files: []string{deb, rpm}, Password: noPassword, KeepSigned: true}
	rel, err := SignRelease(context.Background(), second)
	if err != nil {
		t.Fatal(err)
	}
	sums := readSums(t, dist)
	for _, want := range []string{"vaultpam-connector-0.1.0.ova", "vaultpam-connector-0.1.0.spdx.json", "cosign.pub",
		"vaultpam-connector_0.1.0_amd64.deb", "vaultpam-connector-0.1.0-1.x86_64.rpm"} {
		if _, ok := sums[want]; !ok {
			t.Errorf("SHA256SUMS after both builds lacks %s", want)
		}
	}
	if len(sums) != 5 {
		t.Errorf("SHA256SUMS lists %d files, want 5", len(sums))
	}
	pub, err := LoadPublicKey(filepath.Join(dist, PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyRelease(pub, dist); err != nil {
		t.Errorf("merged release does not verify: %v", err)
	}
	if c := cosignCLIOptional(t); c != "" {
		for _, f := range []string{SumsFile, "vaultpam-connector_0.1.0_amd64.deb", "vaultpam-connector-0.1.0.ova"} {
			if out, err := runCosign(t, c, dist, "verify-blob", "--key", PublicKeyFile, "--signature", f+SigSuffix, "--insecure-ignore-tlog", f); err != nil {
				t.Errorf("cosign verify-blob %s: %v\n%s", f, err, out)
			}
		}
	}

	// Without KeepSigned the list is this build's only (what a single
	// build asks for).
	single := ReleaseConfig{DistDir: dist, Files: []string{deb}, Password: noPassword}
	if _, err := SignRelease(context.Background(), single); err != nil {
		t.Fatal(err)
	}
	if n := len(readSums(t, dist)); n != 2 {
		t.Errorf("without KeepSigned SHA256SUMS lists %d files, want 2 (deb, cosign.pub)", n)
	}

	// The OVA's signature by another key: left out, and said so.
	keyDir := newKeyDir(t, "pw")
	foreign := newSigner(t, keyDir, "pw")
	sig, err := foreign.SignFile(context.Background(), ova)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(ova+SigSuffix, sig.Base64(), 0o644)
	var warn bytes.Buffer
	second.Warn = &warn
	if _, err := SignRelease(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	if _, ok := readSums(t, dist)["vaultpam-connector-0.1.0.ova"]; ok {
		t.Error("an OVA signed with another key is listed")
	}
	if !strings.Contains(warn.String(), "not listed in SHA256SUMS: vaultpam-connector-0.1.0.ova") {
		t.Errorf("warnings = %q; want one naming the OVA", warn.String())
	}
	t.Logf("files written by the second build: %v", rel.Files)
}

func readSums(t *testing.T, dist string) Sums {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dist, SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSums(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
