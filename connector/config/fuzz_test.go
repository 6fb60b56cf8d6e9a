package config

import (
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/allowlist"
	"github.com/vaultpam/appliance/connector/protocol"
)

// FuzzConfig loads fuzzed connector.yaml files. The first "%s" in a file
// is replaced by a secret (an enrolment token in some spelling, or a
// password) made from seed. Properties:
//
//   - no error repeats the secret, not even 6 characters of it, and a
//     configuration that loads holds it in no field;
//   - a configuration that loads is one the connector can run with: the
//     tunnel takes its allowed_targets (one parser), the enrolment
//     requests built from control_plane_url go to that host's enrolment
//     path, proxy_url is an http:// proxy, metrics_listen an IP and port,
//     and update_window reads back from its own spelling.
func FuzzConfig(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "connector.yaml")
	noEnv := func(string) string { return "" }
	f.Fuzz(func(t *testing.T, doc string, seed uint64) {
		secret := ""
		if strings.Contains(doc, "%s") {
			secret = newSecretGen(seed).secret()
			doc = strings.Replace(doc, "%s", secret, 1)
		}
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, noEnv)
		if err != nil {
			if secret != "" {
				if part, ok := leaks(err.Error(), secret); ok {
					t.Fatalf("config\n%s\nerror repeats %q of the secret:\n%v", doc, part, err)
				}
			}
			return
		}
		if secret != "" {
			fields := append([]string{c.ControlPlaneURL, c.ControlPlaneCAFile, c.ConnectorName, c.ProxyURL, c.MetricsListen, c.UpdateWindow.String()}, c.AllowedTargets...)
			for _, v := range fields {
				if part, ok := leaks(v, secret); ok && len(secret) > 6 {
					t.Fatalf("config\n%s\nloads with %q of the secret in a field (%q)", doc, part, v)
				}
			}
		}
		if _, err := allowlist.Parse(c.AllowedTargets); err != nil {
			t.Fatalf("config\n%s\nloads, but the tunnel refuses its allowed_targets: %v", doc, err)
		}
		cp, _ := url.Parse(c.ControlPlaneURL)
		for _, p := range []string{protocol.EnrolStartPath, protocol.WhoAmIPath} {
			// As the enrolment client builds its requests.
			u, err := url.Parse(strings.TrimRight(c.ControlPlaneURL, "/") + p)
			if err != nil || u.Scheme != "https" || u.Host != cp.Host || u.Path != p || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				t.Fatalf("config\n%s\nloads, but control_plane_url %q makes the request %v (%v), not https://%s%s", doc, c.ControlPlaneURL, u, err, cp.Host, p)
			}
		}
		if c.ProxyURL != "" {
			if u, err := url.Parse(c.ProxyURL); err != nil || u.Scheme != "http" || u.Hostname() == "" {
				t.Fatalf("config\n%s\nloads with proxy_url %q, not an http://HOST:PORT proxy", doc, c.ProxyURL)
			}
		}
		if c.MetricsListen != "" {
			if _, err := netip.ParseAddrPort(c.MetricsListen); err != nil {
				t.Fatalf("config\n%s\nloads with metrics_listen %q, not IP:PORT: %v", doc, c.MetricsListen, err)
			}
		}
		if w, err := ParseWindow(c.UpdateWindow.String()); err != nil || !reflect.DeepEqual(w, c.UpdateWindow) {
			t.Fatalf("update_window %q reads back from %q as %q, %v", doc, c.UpdateWindow.String(), w.String(), err)
		}
	})
}
