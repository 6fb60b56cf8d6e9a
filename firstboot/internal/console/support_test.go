package console

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/support"
)

// TestSupportBundleSent: G collects a bundle as the unprivileged console
// can (status, image, diagnostics, journal, network; the verity status
// through the helper), encrypts it to the key the control plane announced
// and hands it to the connector over its real socket; the screen shows
// the bundle's ID and size. The bundle decrypts with the vendor's key and
// holds no planted secret.
func TestSupportBundleSent(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	st := onlineStatus()
	st.SupportRecipient = id.Recipient().String()
	r := newRig(t, st, baseImage(), rigOpt{root: loopbackRoot(t)})
	r.key('g')
	got := r.until("Support bundle sent.")
	bundles := r.conn.Bundles()
	if len(bundles) != 1 {
		t.Fatalf("the connector got %d bundles, want 1", len(bundles))
	}
	sb := bundles[0]
	for _, w := range []string{"Bundle ID             sb-0001", "encrypted (" + itoa(len(sb.Data)) + " bytes)"} {
		if !contains(got, w) {
			t.Errorf("screen lacks %q:\n%s", w, got)
		}
	}
	if want := "support-dc1-connector-1-20261128T120000Z.tar.gz.age"; sb.Name != want {
		t.Errorf("bundle name = %q, want %q", sb.Name, want)
	}
	// The size depends on the temp directory's name in the parts' error
	// texts (no os-release here); it was checked above.
	golden(t, "support-sent", regexp.MustCompile(`[0-9.]+ KiB encrypted \([0-9]+ bytes\)`).ReplaceAllString(got, "N KiB encrypted (N bytes)"))

	b, err := support.Open(bytes.NewReader(sb.Data), id)
	if err != nil {
		t.Fatalf("the bundle does not decrypt with the vendor's key: %v", err)
	}
	parts := map[string]string{}
	for _, p := range b.Parts {
		parts[p.Name] = string(p.Data)
	}
	for name, want := range map[string]string{
		"status.json":                   `"connector_id": "conn-7f3a"`,
		"image/status.json":             `"version": "0.1.0"`,
		"diagnostics.txt":               "127.0.0.1:9",
		"verity/dmsetup-status.txt":     "vroot: 0 188504 verity V",
		"verity/veritysetup-status.txt": "needs root",
		"journal/vaultpam-update.log":   "-u vaultpam-update.service",
		"network/addresses.txt":         "inet 127.0.0.1/8 scope host", // over netlink
		"network/routes.txt":            "read over netlink",
		"config/connector.yaml":         "control_plane_url",
	} {
		if !strings.Contains(parts[name], want) {
			t.Errorf("part %s lacks %q:\n%s", name, want, parts[name])
		}
	}
	for name, data := range parts {
		if strings.Contains(strings.ToUpper(strings.ReplaceAll(data, "-", "")), "WQBMX5KWDB") {
			t.Errorf("part %s holds the planted token", name)
		}
	}
	if !contains(got, "secrets redacted") || strings.Contains(got, " 0 secrets redacted") {
		t.Errorf("the planted tokens were not counted as redacted:\n%s", got)
	}
}

func itoa(n int) string {
	var b []byte
	for n >= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(append([]byte{byte('0' + n)}, b...))
}

// TestSupportBundleTunnelDown: with the tunnel down the screen says so,
// sends nothing and offers the diagnostics (D); when the tunnel drops
// during the upload it says that too.
func TestSupportBundleTunnelDown(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	st := onlineStatus()
	st.SupportRecipient = id.Recipient().String()
	st.State, st.Reason = state.Reconnecting.String(), "tunnel closed: dial tcp 127.0.0.1:9: connection refused"
	r := newRig(t, st, baseImage(), rigOpt{root: loopbackRoot(t)})
	r.key('g')
	got := r.until("The tunnel is down: the bundle was not sent.")
	for _, w := range []string{"the connector is Offline (reconnecting) (tunnel closed", "D diagnostics"} {
		if !contains(got, w) {
			t.Errorf("screen lacks %q:\n%s", w, got)
		}
	}
	golden(t, "support-tunnel-down", got)
	if n := len(r.conn.Bundles()); n != 0 {
		t.Errorf("%d bundles sent with the tunnel down", n)
	}
	r.key('d')
	r.until("Checking the way to https://127.0.0.1:9")
	r.until("The TCP step failed.")
	r.esc()

	// Online, but the tunnel drops while the bundle goes.
	st.State, st.Reason = state.Online.String(), ""
	r.conn.Set(st)
	r.conn.TunnelDown(true)
	r.key('g')
	got = r.until("The tunnel is down: the bundle was not sent.")
	if !contains(got, "went down while sending") {
		t.Errorf("screen:\n%s", got)
	}
	r.conn.TunnelDown(false)
	r.key('g')
	r.until("Support bundle sent.")
}

// TestSupportBundleNoKey: before the control plane announced its key
// there is nothing to encrypt to; the screen says what to do.
func TestSupportBundleNoKey(t *testing.T) {
	r := newRig(t, onlineStatus(), baseImage(), rigOpt{root: loopbackRoot(t)})
	r.key('g')
	got := r.until("The support bundle was not sent.")
	if !contains(got, "No support-bundle key is known yet") {
		t.Errorf("screen:\n%s", got)
	}
}
