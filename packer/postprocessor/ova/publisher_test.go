package ova

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/appliance/ova"
	"github.com/vaultpam/appliance/appliance/ova/ovatest"
)

// TestPostProcessPublisher sets publisher_key_file and publisher_cert_file
// and checks the OVA carries a .cert that verifies, right after the .mf.
func TestPostProcessPublisher(t *testing.T) {
	chain := ovatest.New(t, ovatest.Options{NoCodeSigning: true})
	disk := smallDisk(t, 3<<20)
	dist := filepath.Join(t.TempDir(), "dist")
	p, err := configure(t, map[string]any{"output_dir": dist, "publisher_key_file": chain.KeyPath, "publisher_cert_file": chain.CertPath})
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	var out, errOut bytes.Buffer
	ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &out, ErrorWriter: &errOut, PB: &packersdk.NoopProgressTracker{}}
	a, _, _, err := p.PostProcess(context.Background(), ui, rawArtifact{disk})
	if err != nil {
		t.Fatalf("PostProcess: %v", err)
	}
	arc, err := ova.VerifyArchiveFile(a.Files()[0])
	if err != nil {
		t.Fatalf("VerifyArchiveFile: %v", err)
	}
	if got, want := strings.Join(arc.Members, " "), "vaultpam-connector-9.8.7.ovf vaultpam-connector-9.8.7.mf vaultpam-connector-9.8.7.cert vaultpam-connector-9.8.7-disk1.vmdk"; got != want {
		t.Errorf("members = %s, want %s", got, want)
	}
	if arc.CertName != "vaultpam-connector-9.8.7.cert" || !arc.Chain[0].Equal(chain.Leaf) {
		t.Errorf("VerifyArchiveFile = %+v", arc)
	}
	if !strings.Contains(out.String(), "Signed vaultpam-connector-9.8.7.mf as vaultpam-connector-9.8.7.cert for publisher CN=VaultPAM Release Signing") {
		t.Errorf("ui output lacks the publisher:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "Warning: publisher certificate CN=VaultPAM Release Signing,O=VaultPAM Test,C=DE lacks the codeSigning extended key usage") {
		t.Errorf("no warning for a certificate without codeSigning:\n%s", errOut.String())
	}
	keyPEM, _ := os.ReadFile(chain.KeyPath)
	for _, l := range strings.Split(string(keyPEM), "\n") {
		if len(l) > 16 && !strings.HasPrefix(l, "-----") && strings.Contains(out.String()+errOut.String(), l) {
			t.Fatal("the ui output shows key material")
		}
	}
}

func TestConfigurePublisherErrors(t *testing.T) {
	chain := ovatest.New(t, ovatest.Options{})
	expired := ovatest.New(t, ovatest.Options{NotBefore: time.Now().AddDate(-2, 0, 0), NotAfter: time.Now().AddDate(-1, 0, 0)})
	other := ovatest.New(t, ovatest.Options{LeafKey: ovatest.Key(t, 3072, 2)})
	for _, tc := range []struct {
		raw  map[string]any
		want []string
	}{
		{map[string]any{"publisher_key_file": chain.KeyPath}, []string{"publisher_key_file is set but publisher_cert_file is empty: set both"}},
		{map[string]any{"publisher_cert_file": chain.CertPath}, []string{"publisher_cert_file is set but publisher_key_file is empty"}},
		{map[string]any{"publisher_key_file": expired.KeyPath, "publisher_cert_file": expired.CertPath}, []string{"publisher certificate has expired", "valid from", "hint: fix the key or certificate, or unset both"}},
		{map[string]any{"publisher_key_file": chain.KeyPath, "publisher_cert_file": other.CertPath}, []string{"publisher key does not match the certificate"}},
		{map[string]any{"publisher_key_file": filepath.Join(t.TempDir(), "none.pem"), "publisher_cert_file": chain.CertPath}, []string{"reading publisher key", "none.pem"}},
	} {
		_, err := configure(t, tc.raw)
		if err == nil {
			t.Errorf("Configure(%v) = nil error", tc.raw)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Configure(%v) = %v; want it to say %q", tc.raw, err, w)
			}
		}
	}
}
