package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/deploy/internal/shapetest"
	"github.com/vaultpam/appliance/signing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	shapetest.Cleanup()
	os.Exit(code)
}

func unit(t *testing.T) string {
	for _, p := range []string{"connector/cmd/vaultpam-connector/vaultpam-connector.service", "rootfs/overlay/usr/lib/systemd/system/vaultpam-connector.service"} {
		if full := filepath.Join(shapetest.RepoRoot(t), p); fileExists(full) {
			return full
		}
	}
	t.Fatal("no connector unit in the repository")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func env(stdout, stderr *bytes.Buffer, args ...string) Env {
	vars := map[string]string{"SOURCE_DATE_EPOCH": "1767225600"} // COSIGN_PASSWORD unset: the development key
	return Env{Stdout: stdout, Stderr: stderr, Args: args,
		Getenv:    func(k string) string { return vars[k] },
		LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
}

// signOVA stands in for make ova's cosign post-processor: an OVA signed
// with the development key into dist, KeepSigned like the real one.
func signOVA(t *testing.T, dist string) {
	t.Helper()
	ova := filepath.Join(dist, "vaultpam-connector-0.1.0.ova")
	b := make([]byte, 1<<20)
	rand.Read(b)
	os.WriteFile(ova, b, 0o644)
	_, err := signing.SignRelease(context.Background(), signing.ReleaseConfig{DistDir: dist, Files: []string{ova}, KeepSigned: true,
		Password: signing.EnvPassword(func(string) (string, bool) { return "", false })})
	if err != nil {
		t.Fatal(err)
	}
}

func listed(t *testing.T, dist string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		names = append(names, l[strings.Index(l, "  ")+2:])
	}
	sort.Strings(names)
	return names
}

// make packages and make ova, in either order, leave one SHA256SUMS that
// lists every artifact, signed with the same (development) key; the real
// cosign CLI accepts every .sig.
func TestBuildSignsIntoSharedDist(t *testing.T) {
	bin := shapetest.Binary(t, shapetest.ConnectorPkg)
	want := "SHA256SUMS: cosign.pub vaultpam-connector-0.1.0-1.x86_64.rpm vaultpam-connector-0.1.0.oci.tar vaultpam-connector-0.1.0.ova vaultpam-connector_0.1.0_amd64.deb"
	for _, order := range []string{"ova first", "packages first"} {
		t.Run(order, func(t *testing.T) {
			dist := t.TempDir()
			if order == "ova first" {
				signOVA(t, dist)
			}
			var out, errb bytes.Buffer
			start := time.Now()
			if c := Main(context.Background(), env(&out, &errb, "build", "--connector", bin, "--unit", unit(t), "--version", "0.1.0", "--dist", dist)); c != 0 {
				t.Fatalf("exit %d\n%s\n%s", c, out.String(), errb.String())
			}
			t.Logf("vaultpam-packages build took %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
			if !strings.Contains(errb.String(), "development key") {
				t.Errorf("no development-key warning:\n%s", errb.String())
			}
			if order == "packages first" {
				signOVA(t, dist)
			}
			if got := "SHA256SUMS: " + strings.Join(listed(t, dist), " "); got != want {
				t.Errorf("%s\nwant %s", got, want)
			}
			pub, err := signing.LoadPublicKey(filepath.Join(dist, "cosign.pub"))
			if err != nil {
				t.Fatal(err)
			}
			if checked, err := signing.VerifyRelease(pub, dist); err != nil {
				t.Errorf("VerifyRelease: %v", err)
			} else {
				t.Logf("VerifyRelease: %d checks", len(checked))
			}
			cosignVerifyAll(t, dist)
		})
	}
}

// cosignVerifyAll runs the real cosign verify-blob on every .sig in dist,
// with its network pointed at a closed loopback port.
func cosignVerifyAll(t *testing.T, dist string) {
	t.Helper()
	cosign := os.Getenv("VAULTPAM_COSIGN")
	if cosign == "" {
		cosign = filepath.Join(shapetest.RepoRoot(t), "bin", "tools", "cosign")
	}
	if !fileExists(cosign) {
		t.Logf("cosign CLI not found at %s (make tools builds it): checked with our own verification only", cosign)
		return
	}
	sigs, _ := filepath.Glob(filepath.Join(dist, "*.sig"))
	for _, sig := range sigs {
		blob := strings.TrimSuffix(sig, ".sig")
		cmd := exec.Command(cosign, "verify-blob", "--key", "cosign.pub", "--signature", filepath.Base(sig), "--insecure-ignore-tlog", filepath.Base(blob))
		cmd.Dir = dist
		cmd.Env = []string{"HOME=" + t.TempDir(), "HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=", "PATH=/usr/bin:/bin"}
		b, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(b), "Verified OK") {
			t.Errorf("cosign verify-blob %s: %v\n%s", filepath.Base(blob), err, b)
		}
	}
	t.Logf("cosign verify-blob: Verified OK for %d signatures", len(sigs))
}

func TestUsageAndBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if c := Main(context.Background(), env(&out, &errb)); c != 2 {
		t.Errorf("no command: exit %d", c)
	}
	errb.Reset()
	c := Main(context.Background(), env(&out, &errb, "build", "--dist", t.TempDir()))
	if c != 1 || !strings.Contains(errb.String(), "binary is not set") || !strings.Contains(errb.String(), "version is not set") || !strings.Contains(errb.String(), "hint: run it through `make packages`") {
		t.Errorf("missing flags: exit %d\n%s", c, errb.String())
	}
}
