package cosign

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/signing"
)

type testUI struct {
	packersdk.BasicUi
	out, errs bytes.Buffer
}

func newUI() *testUI {
	u := &testUI{}
	u.BasicUi = packersdk.BasicUi{Reader: new(bytes.Buffer), Writer: &u.out, ErrorWriter: &u.errs}
	return u
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeOVA(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
}

func configured(t *testing.T, raw map[string]interface{}, e map[string]string) *PostProcessor {
	t.Helper()
	p := New()
	p.LookupEnv = env(e)
	p.Now = func() time.Time { t.Fatal("Now called although SOURCE_DATE_EPOCH is set"); return time.Time{} }
	if err := p.Configure(raw); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

func TestPostProcessDevKey(t *testing.T) {
	build, dist := t.TempDir(), filepath.Join(t.TempDir(), "dist")
	ova := filepath.Join(build, "vaultpam-connector-0.1.0.ova")
	writeOVA(t, ova, 5<<20+3)
	p := configured(t, map[string]interface{}{
		"dist_dir":    dist,
		"sbom_source": filepath.Join("..", "..", "..", "signing", "sbom", "testdata", "status"),
	}, map[string]string{"SOURCE_DATE_EPOCH": "1767225600"}) // COSIGN_PASSWORD unset
	ui := newUI()
	in := &packersdk.MockArtifact{FilesValue: []string{filepath.Join(build, "vaultpam-connector-0.1.0.ovf"), ova},
		StateValues: map[string]interface{}{"version": "0.1.0"}}
	art, keep, force, err := p.PostProcess(context.Background(), ui, in)
	if err != nil {
		t.Fatalf("PostProcess: %v\nstdout: %s\nstderr: %s", err, ui.out.String(), ui.errs.String())
	}
	if !keep || !force {
		t.Errorf("keep, force = %v, %v; want the input OVA kept", keep, force)
	}
	if !strings.Contains(ui.errs.String(), "development key, not for release") {
		t.Errorf("no development-key warning on the error stream:\n%s", ui.errs.String())
	}
	if art.State("dev_key") != true || !strings.Contains(art.String(), "DEVELOPMENT") {
		t.Errorf("artifact = %s, dev_key=%v; want it marked as development-signed", art, art.State("dev_key"))
	}
	var names []string
	for _, f := range art.Files() {
		names = append(names, filepath.Base(f))
	}
	sort.Strings(names)
	want := "SHA256SUMS SHA256SUMS.sig cosign.pub vaultpam-connector-0.1.0.ova vaultpam-connector-0.1.0.ova.sig vaultpam-connector-0.1.0.ova.sigstore.json vaultpam-connector-0.1.0.spdx.json vaultpam-connector-0.1.0.spdx.json.sig vaultpam-connector-0.1.0.spdx.json.sigstore.json"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("artifact files = %s\nwant %s", got, want)
	}
	pub, err := signing.LoadPublicKey(filepath.Join(dist, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signing.VerifyRelease(pub, dist); err != nil {
		t.Errorf("VerifyRelease(dist) = %v", err)
	}
	sb, err := os.ReadFile(filepath.Join(dist, "vaultpam-connector-0.1.0.spdx.json"))
	if err != nil || !bytes.Contains(sb, []byte(`"created": "2026-01-01T00:00:00Z"`)) || !bytes.Contains(sb, []byte("pkg:deb/debian/systemd@")) {
		t.Errorf("SBOM lacks the SOURCE_DATE_EPOCH time or the Debian packages (err %v)", err)
	}

	if cosign := cosignCLI(t); cosign != "" {
		for _, n := range []string{"vaultpam-connector-0.1.0.ova", "SHA256SUMS", "vaultpam-connector-0.1.0.spdx.json"} {
			cmd := exec.Command(cosign, "verify-blob", "--key", "cosign.pub", "--signature", n+".sig", "--insecure-ignore-tlog", n)
			// The proxy keeps cosign's attempt to fetch sigstore's TUF root on
			// loopback (a closed port): tests never reach the network.
			cmd.Dir, cmd.Env = dist, []string{"HOME=" + dist, "PATH=/usr/bin:/bin",
				"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=",
				"https_proxy=http://127.0.0.1:9", "http_proxy=http://127.0.0.1:9", "no_proxy="}
			out, err := cmd.CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("Verified OK")) {
				t.Errorf("cosign verify-blob %s: %v\n%s", n, err, out)
			}
		}
	}

	if err := art.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dist, "SHA256SUMS")); !os.IsNotExist(err) {
		t.Errorf("SHA256SUMS still there after Destroy (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dist, "vaultpam-connector-0.1.0.ova")); err != nil {
		t.Errorf("Destroy removed the OVA: %v", err)
	}
}

func TestPostProcessKeyFileWrongPassword(t *testing.T) {
	keys := t.TempDir()
	kp, err := signing.GenerateKeyPair(signing.StaticPassword([]byte("right-one")))
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.WriteKeyPair(keys, kp); err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	ova := filepath.Join(dist, "x.ova")
	writeOVA(t, ova, 1<<16)
	in := &packersdk.MockArtifact{FilesValue: []string{ova}}
	key := filepath.Join(keys, "cosign.key")

	p := configured(t, map[string]interface{}{"dist_dir": dist, "key": key, "version": "1.2.3"},
		map[string]string{"SOURCE_DATE_EPOCH": "0", "COSIGN_PASSWORD": "not-the-one"})
	ui := newUI()
	_, _, _, err = p.PostProcess(context.Background(), ui, in)
	if err == nil || !strings.Contains(err.Error(), "wrong password") || !strings.Contains(err.Error(), "hint: COSIGN_PASSWORD") {
		t.Fatalf("PostProcess(wrong password) = %v, want a wrong-password error with a hint", err)
	}
	if strings.Contains(err.Error()+ui.out.String()+ui.errs.String(), "not-the-one") {
		t.Error("the password appears in the error or the UI output")
	}
	if _, err := os.Stat(filepath.Join(dist, "x.ova.sig")); !os.IsNotExist(err) {
		t.Errorf("x.ova.sig exists after a failed signing (%v)", err)
	}

	p = configured(t, map[string]interface{}{"dist_dir": dist, "key": key, "version": "1.2.3"},
		map[string]string{"SOURCE_DATE_EPOCH": "0", "COSIGN_PASSWORD": "right-one"})
	if _, _, _, err := p.PostProcess(context.Background(), newUI(), in); err != nil {
		t.Fatalf("PostProcess(right password) = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dist, "cosign.key")); !os.IsNotExist(err) {
		t.Error("a release-key build wrote a private key into dist")
	}
}

func TestConfigureRejects(t *testing.T) {
	for _, tc := range []struct {
		raw  map[string]interface{}
		want string
	}{
		{map[string]interface{}{"key": "pkcs11://slot"}, "unknown key reference scheme"},
		{map[string]interface{}{"key": "awskms://no-alias-here"}, "malformed KMS key reference"},
		{map[string]interface{}{"no_such_option": "x"}, "no_such_option"},
	} {
		err := New().Configure(tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Configure(%v) = %v, want an error containing %q", tc.raw, err, tc.want)
		}
	}
}

// TestConfigureDefaults: HCL2 passes unset options as empty values; the
// defaults must still apply (packer validate found this).
func TestConfigureDefaults(t *testing.T) {
	p := New()
	if err := p.Configure(map[string]interface{}{"dist_dir": "", "name": "", "key": ""}); err != nil {
		t.Fatalf("Configure(empty options) = %v", err)
	}
	if p.config.DistDir != "dist" || p.config.Name != "vaultpam-connector" {
		t.Errorf("config = %+v, want defaults dist and vaultpam-connector", p.config)
	}
}

func TestPostProcessNoOVA(t *testing.T) {
	p := configured(t, map[string]interface{}{"dist_dir": t.TempDir()}, map[string]string{"SOURCE_DATE_EPOCH": "0"})
	_, _, _, err := p.PostProcess(context.Background(), newUI(), &packersdk.MockArtifact{FilesValue: []string{"/tmp/disk.raw"}})
	if err == nil || !strings.Contains(err.Error(), "vaultpam-ova") {
		t.Errorf("PostProcess(no .ova) = %v, want a hint to run vaultpam-ova first", err)
	}
}

// cosignCLI returns $VAULTPAM_COSIGN or bin/tools/cosign when present, ""
// otherwise (the rest of the test still runs).
func cosignCLI(t *testing.T) string {
	p := os.Getenv("VAULTPAM_COSIGN")
	if p == "" {
		p = filepath.Join("..", "..", "..", "bin", "tools", "cosign")
	}
	abs, _ := filepath.Abs(p)
	if _, err := os.Stat(abs); err != nil {
		t.Logf("cosign CLI not at %s (make tools): skipping the cosign half", abs)
		return ""
	}
	return abs
}
