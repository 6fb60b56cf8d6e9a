package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/appliance/ova"
	"github.com/vaultpam/appliance/appliance/ova/ovatest"
	"github.com/vaultpam/appliance/appliance/ovf"
)

// buildOVA writes a small OVA named NAME.ova into dir, with a VMware .cert
// when chain is not nil.
func buildOVA(t *testing.T, dir, name string, chain *ovatest.Chain) string {
	t.Helper()
	raw := make([]byte, 1<<20)
	copy(raw[4096:], bytes.Repeat([]byte("vaultpam"), 4096))
	disk := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(disk, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	oc := ovf.DefaultConfig()
	oc.Version, oc.FullVersion = "1.2.3", "1.2.3"
	cfg := &ova.Config{Name: name, OVF: oc, ModTime: time.Unix(1767225600, 0)}
	if chain != nil {
		pub, err := ova.LoadPublisher(chain.KeyPath, chain.CertPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Publisher = pub
	}
	p := filepath.Join(dir, name+".ova")
	if _, err := ova.BuildFile(context.Background(), p, disk, cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

// signRelease signs the files into a new dist dir with a new cosign key
// and returns the dist dir and the public key.
func signRelease(t *testing.T, files ...string) (dist, pub string) {
	t.Helper()
	dir := t.TempDir()
	dist = filepath.Join(dir, "dist")
	env := map[string]string{"COSIGN_PASSWORD": "", "SOURCE_DATE_EPOCH": "1767225600"}
	if code, _, stderr := runApp(t, env, "generate-key-pair", "--output-dir", dir); code != 0 {
		t.Fatalf("generate-key-pair = %d: %s", code, stderr)
	}
	args := append([]string{"sign", "--dist", dist, "--key", filepath.Join(dir, "cosign.key"),
		"--sbom-source", "../../sbom/testdata/status", "--version", "1.2.3"}, files...)
	if code, _, stderr := runApp(t, env, args...); code != 0 {
		t.Fatalf("sign = %d: %s", code, stderr)
	}
	return dist, filepath.Join(dir, "cosign.pub")
}

func TestVerifyOVACert(t *testing.T) {
	chain := ovatest.New(t, ovatest.Options{})
	src := t.TempDir()
	signed := buildOVA(t, src, "signed-1.2.3", chain)
	plain := buildOVA(t, src, "plain-1.2.3", nil)
	dist, pub := signRelease(t, signed, plain)

	code, stdout, stderr := runApp(t, nil, "verify", "--key", pub, dist)
	if code != 0 {
		t.Fatalf("verify = %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"OK  signed-1.2.3.ova: members match signed-1.2.3.mf\n",
		"OK  signed-1.2.3.ova: signed-1.2.3.cert signs signed-1.2.3.mf; publisher CN=VaultPAM Release Signing,O=VaultPAM Test,C=DE, issued by CN=VaultPAM Test Root CA,O=VaultPAM Test, valid " +
			chain.Leaf.NotBefore.UTC().Format(time.DateOnly) + " to " + chain.Leaf.NotAfter.UTC().Format(time.DateOnly) + "\n",
		"OK  plain-1.2.3.ova: members match plain-1.2.3.mf\n",
		"--  plain-1.2.3.ova: no VMware .cert (optional)\n",
		"Verified OK: 14 checks in ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, stdout)
		}
	}
	t.Logf("verify:\n%s", stdout)

	// Years later the certificate has expired: a warning, not a failure.
	var out, errb bytes.Buffer
	a := &app{Stdout: &out, Stderr: &errb, Args: []string{"verify", "--key", pub, dist},
		Now: func() time.Time { return chain.Leaf.NotAfter.AddDate(1, 0, 0) }}
	if code := a.run(context.Background()); code != 0 || !strings.Contains(errb.String(), "warning: signed-1.2.3.ova: the publisher certificate is not valid today") {
		t.Errorf("verify after expiry = %d\n%s%s", code, out.String(), errb.String())
	}
}

// TestVerifyOVACertTampered signs a release whose OVA carries a broken
// .cert: the cosign signatures verify, the .cert check fails.
func TestVerifyOVACertTampered(t *testing.T) {
	chain := ovatest.New(t, ovatest.Options{})
	src := t.TempDir()
	p := buildOVA(t, src, "bad-1.2.3", chain)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("SHA256(bad-1.2.3.mf)= "))
	if i < 0 {
		t.Fatal("no .cert signature line in the OVA")
	}
	j := i + len("SHA256(bad-1.2.3.mf)= ") + 100 // a hex digit of the signature, same length
	b[j] = map[bool]byte{true: '1', false: '0'}[b[j] == '0']
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dist, pub := signRelease(t, p)
	code, stdout, stderr := runApp(t, nil, "verify", "--key", pub, dist)
	if code != 1 || !strings.Contains(stderr, "vaultpam-sign: error: bad-1.2.3.ova: bad-1.2.3.cert: the .cert signature was not made with its certificate's key (CN=VaultPAM Release Signing") ||
		!strings.Contains(stderr, "hint: the OVA's manifest or VMware .cert does not verify") || strings.Contains(stdout, "Verified OK") {
		t.Errorf("verify with a tampered .cert = %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("tampered .cert:\n%s", stderr)
}
