package privileged

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

func shortTrial(d time.Duration) func(*Config) { return func(c *Config) { c.TrialTimeout = d } }

func readConfig(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitTrialOver polls the helper until no trial runs. The deadline only
// bounds a hung test.
func waitTrialOver(t *testing.T, f *fixture) TrialState {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		st, err := f.client.TrialStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !st.Active {
			return st
		}
	}
	t.Fatal("the trial never ended")
	return TrialState{}
}

// TestTrialRevertsByItself: a trial change to a wrong gateway on VLAN 7,
// not kept, comes back by itself: the old unit again, the VLAN files
// gone, networkd and the connector restarted, the reason recorded, and
// the systemd timer that backs the deadline started then stopped.
func TestTrialRevertsByItself(t *testing.T) {
	f := newFixture(t, shortTrial(300*time.Millisecond))
	ctx := context.Background()
	old := goodSettings()
	if _, err := f.client.WriteSettings(ctx, old); err != nil {
		t.Fatal(err)
	}
	before := readConfig(t, f.root, settings.NetworkUnit)
	trial := old
	trial.Gateway, trial.VLAN = "192.0.2.99", "7"
	st, err := f.client.TrialNetwork(ctx, trial)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Active || st.Deadline.IsZero() {
		t.Fatalf("trial state %+v, want active with a deadline", st)
	}
	if u := readConfig(t, f.root, settings.VLANUnit); !strings.Contains(u, "Gateway=192.0.2.99\n") {
		t.Errorf("the trial's unit is not in place:\n%s", u)
	}
	st = waitTrialOver(t, f)
	if st.RevertReason != "not kept within 300ms" || st.RevertedAt.IsZero() {
		t.Errorf("after the deadline: %+v, want the revert recorded with its reason", st)
	}
	if got := readConfig(t, f.root, settings.NetworkUnit); got != before {
		t.Errorf("unit after the revert:\n%s\nwant the previous one:\n%s", got, before)
	}
	for _, p := range []string{settings.VLANUnit, settings.VLANNetdev, TrialDir} {
		if _, err := os.Stat(filepath.Join(f.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there after the revert (%v)", p, err)
		}
	}
	cmds := strings.Join(f.sys.commands(), "\n")
	for _, want := range []string{"systemctl restart " + RevertTimer, "systemctl restart systemd-networkd", "systemctl restart vaultpam-connector", "systemctl stop " + RevertTimer} {
		if !strings.Contains(cmds, want) {
			t.Errorf("commands lack %q:\n%s", want, cmds)
		}
	}
	if !strings.Contains(f.log.String(), "previous network settings restored: not kept within 300ms") {
		t.Errorf("log does not say the settings came back:\n%s", f.log)
	}
}

// TestTrialKept: K before the deadline keeps the new settings; the timer
// then does nothing, and a second keep says there is nothing to keep.
func TestTrialKept(t *testing.T) {
	f := newFixture(t, shortTrial(time.Hour))
	ctx := context.Background()
	if _, err := f.client.WriteSettings(ctx, goodSettings()); err != nil {
		t.Fatal(err)
	}
	trial := goodSettings()
	trial.IPv6, trial.Address6, trial.Gateway6 = settings.IPv6Static, "2001:db8::10/64", "2001:db8::1"
	if _, err := f.client.TrialNetwork(ctx, trial); err != nil {
		t.Fatal(err)
	}
	// A second trial while one runs is refused.
	if _, err := f.client.TrialNetwork(ctx, trial); err == nil || !strings.Contains(err.Error(), "already on trial") {
		t.Errorf("second trial: %v, want a refusal", err)
	}
	if err := f.client.KeepNetwork(ctx); err != nil {
		t.Fatal(err)
	}
	if u := readConfig(t, f.root, settings.NetworkUnit); !strings.Contains(u, "Address=2001:db8::10/64\n") {
		t.Errorf("kept unit lacks the IPv6 address:\n%s", u)
	}
	if _, err := os.Stat(filepath.Join(f.root, TrialDir)); !os.IsNotExist(err) {
		t.Errorf("the kept-aside files are still there (%v)", err)
	}
	err := f.client.KeepNetwork(ctx)
	var e *Error
	if err == nil || !asError(err, &e) || e.Status != http.StatusConflict {
		t.Errorf("keep without a trial: %v, want 409", err)
	}
}

func asError(err error, e **Error) bool {
	x, ok := err.(*Error)
	if ok {
		*e = x
	}
	return ok
}

// TestRevertCommandWhenTheHelperDied: the helper that started a trial is
// gone; `helper --revert-network` (what the systemd timer runs) restores
// once the deadline has passed, not before, and at boot at once.
func TestRevertCommandWhenTheHelperDied(t *testing.T) {
	f := newFixture(t, shortTrial(time.Hour))
	ctx := context.Background()
	if _, err := f.client.WriteSettings(ctx, goodSettings()); err != nil {
		t.Fatal(err)
	}
	before := readConfig(t, f.root, settings.NetworkUnit)
	trial := goodSettings()
	trial.Gateway = "192.0.2.99"
	if _, err := f.client.TrialNetwork(ctx, trial); err != nil {
		t.Fatal(err)
	}
	f.srv.disarmTrial() // the helper dies: its timer with it

	other := func(now time.Time, atBoot bool) string {
		cfg := DefaultConfig()
		cfg.Root, cfg.Run, cfg.Log = f.root, f.sys, f.log
		cfg.Now = func() time.Time { return now }
		s, err := NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		what, err := s.RevertIfDue(ctx, atBoot)
		if err != nil {
			t.Fatal(err)
		}
		return what
	}
	start := f.sys.now
	if what := other(start.Add(time.Minute), false); !strings.Contains(what, "nothing to do yet") {
		t.Errorf("before the deadline: %q", what)
	}
	if !strings.Contains(readConfig(t, f.root, settings.NetworkUnit), "Gateway=192.0.2.99") {
		t.Fatal("reverted before the deadline")
	}
	if what := other(start.Add(2*time.Hour), false); what != "previous network settings restored: not kept within 2m0s" {
		t.Errorf("after the deadline: %q", what)
	}
	if got := readConfig(t, f.root, settings.NetworkUnit); got != before {
		t.Errorf("unit after the revert command:\n%s\nwant:\n%s", got, before)
	}

	// At boot: at once, files only.
	if _, err := f.client.TrialNetwork(ctx, trial); err != nil {
		t.Fatal(err)
	}
	f.srv.disarmTrial()
	n := len(f.sys.commands())
	if what := other(start, true); what != "previous network settings restored: the appliance restarted during the trial" {
		t.Errorf("at boot: %q", what)
	}
	if got := readConfig(t, f.root, settings.NetworkUnit); got != before {
		t.Errorf("unit after the boot revert:\n%s\nwant:\n%s", got, before)
	}
	if extra := f.sys.commands()[n:]; len(extra) != 0 {
		t.Errorf("the boot revert ran %v; before networkd starts it only puts files back", extra)
	}
}

// TestTrustCA: certificates are added to /config/ca.pem; a private key is
// refused as a secret and nothing is written.
func TestTrustCA(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.client.WriteSettings(ctx, goodSettings()); err != nil {
		t.Fatal(err)
	}
	ca := caPEMForTest(t)
	if err := f.client.TrustCA(ctx, ca); err != nil {
		t.Fatal(err)
	}
	if got := readConfig(t, f.root, settings.CAFile); !strings.Contains(got, string(ca)) {
		t.Errorf("ca.pem lacks the certificate:\n%s", got)
	}
	if cy := readConfig(t, f.root, settings.ConnectorYAML); !strings.Contains(cy, "control_plane_ca_file: /config/ca.pem") {
		t.Errorf("connector.yaml does not point at the bundle:\n%s", cy)
	}
	key := "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n"
	err := f.client.TrustCA(ctx, []byte(key))
	var e *Error
	if err == nil || !asError(err, &e) || e.Code != CodeSecret || strings.Contains(err.Error(), "MC4CAQ") {
		t.Errorf("trusting a key: %v, want %s without the key in it", err, CodeSecret)
	}
	if strings.Contains(f.log.String(), "MC4CAQ") {
		t.Errorf("the helper logged the key:\n%s", f.log)
	}
}

func caPEMForTest(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "Proxy CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
