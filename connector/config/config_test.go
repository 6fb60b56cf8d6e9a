package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vaultpam/appliance/connector/protocol"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "connector.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadFileAndEnvOverrides(t *testing.T) {
	p := writeConfig(t, `
control_plane_url: https://cp.example.com
connector_name: dc1-connector-1
allowed_targets: ["10.20.0.0/16", "db.internal:5432", "10.0.0.5"]
proxy_url: http://proxy.internal:3128
drain_timeout: 45s
`)
	got, err := Load(p, env(nil))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := Config{ControlPlaneURL: "https://cp.example.com", ConnectorName: "dc1-connector-1",
		AllowedTargets: []string{"10.20.0.0/16", "db.internal:5432", "10.0.0.5"}, ProxyURL: "http://proxy.internal:3128", DrainTimeout: Duration(45e9)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Load (-want +got):\n%s", d)
	}

	got, err = Load(p, env(map[string]string{EnvControlPlaneURL: "https://other.example.com:8443", EnvConnectorName: "dc2", EnvAllowedTargets: "192.0.2.0/24, ssh.internal:22"}))
	if err != nil {
		t.Fatalf("Load with env = %v", err)
	}
	if got.ControlPlaneURL != "https://other.example.com:8443" || got.ConnectorName != "dc2" || !cmp.Equal(got.AllowedTargets, []string{"192.0.2.0/24", "ssh.internal:22"}) {
		t.Errorf("env overrides not applied: %+v", got)
	}
}

func TestLoadEnvOnly(t *testing.T) {
	got, err := Load("", env(map[string]string{EnvControlPlaneURL: "https://cp.example.com", EnvConnectorName: "k8s-1"}))
	if err != nil || got.ConnectorName != "k8s-1" || got.Drain() != DefaultDrainTimeout {
		t.Fatalf("Load(env only) = %+v, %v", got, err)
	}
}

// Every problem is reported at once, each naming its field.
func TestValidateReportsEveryProblem(t *testing.T) {
	p := writeConfig(t, `
control_plane_url: http://cp.example.com
connector_name: "bad name!"
allowed_targets: ["10.0.0.0/33x", "db:99999"]
proxy_url: socks5://p:1080
control_plane_ca_file: /nonexistent/ca.pem
`)
	_, err := Load(p, env(nil))
	if err == nil {
		t.Fatal("Load accepted a bad config")
	}
	for _, field := range []string{"control_plane_url", "connector_name", "allowed_targets[0]", "allowed_targets[1]", "proxy_url", "control_plane_ca_file"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
}

func TestUnknownFieldRejected(t *testing.T) {
	p := writeConfig(t, "control_plane_url: https://cp.example.com\nconnector_name: a\ncontrol_plane: x\n")
	_, err := Load(p, env(nil))
	if err == nil || !strings.Contains(err.Error(), "control_plane (line 3): unknown field") {
		t.Fatalf("Load = %v, want unknown field error", err)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Load(missing) = %v", err)
	}
}

const fakeKey = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n"

// Secrets are refused, the field is named and the secret is not repeated.
func TestSecretsRefused(t *testing.T) {
	tok, _ := protocol.NewToken(nil)
	for _, tc := range []struct {
		name, yaml, field string
	}{
		{"token field", "enrolment_token: abc\n", "enrolment_token"},
		{"password field", "proxy_password: hunter2\n", "proxy_password"},
		{"private key field", "private_key: x\n", "private_key"},
		{"key in a known field", "connector_name: |\n  " + strings.ReplaceAll(fakeKey, "\n", "\n  ") + "\n", "connector_name"},
		{"token as name", "connector_name: " + protocol.FormatToken(tok) + "\n", "connector_name"},
		{"bare token in a list", "allowed_targets: [" + tok + "]\n", "allowed_targets[0]"},
		{"proxy password", "proxy_url: http://user:pw@proxy:3128\n", "proxy_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, "control_plane_url: https://cp.example.com\n"+tc.yaml)
			_, err := Load(p, env(nil))
			if err == nil {
				t.Fatal("Load accepted a secret")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.field) {
				t.Errorf("error does not name %s: %v", tc.field, msg)
			}
			for _, secret := range []string{tok, protocol.FormatToken(tok), "hunter2", "MHcCAQEEIB", "user:pw"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error repeats the secret %q: %v", secret, msg)
				}
			}
		})
	}
}

func TestCAFileWithPrivateKeyRefused(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"+fakeKey), 0o644)
	c := Config{ControlPlaneURL: "https://cp", ConnectorName: "a", ControlPlaneCAFile: ca}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("Validate = %v, want private key refused", err)
	}
}

func TestEnvSecretRefused(t *testing.T) {
	tok, _ := protocol.NewToken(nil)
	_, err := Load("", env(map[string]string{EnvControlPlaneURL: "https://cp", EnvConnectorName: tok}))
	if err == nil || !strings.Contains(err.Error(), EnvConnectorName) {
		t.Fatalf("Load = %v, want %s refused", err, EnvConnectorName)
	}
	if errors.Unwrap(err) == nil && strings.Contains(err.Error(), tok) {
		t.Fatal("error repeats the token")
	}
}

// Entries the tunnel refuses are refused at load, by the tunnel's own
// parser, each with what is wrong: a host name without a port, a
// wildcard, a named port, something that is neither address nor name.
func TestAllowedTargetsTheTunnelRefusesAreRefusedAtLoad(t *testing.T) {
	for entry, want := range map[string]string{
		"db.internal":     "a host name needs a port",
		"*.internal:22":   "wildcards are not supported",
		"db.internal:ssh": "the port must be a number",
		"0":               "is not an IP address, a CIDR, or host:port",
	} {
		p := writeConfig(t, "control_plane_url: https://cp.example.com\nconnector_name: a\nallowed_targets: [\"10.0.0.0/8\", \""+entry+"\"]\n")
		_, err := Load(p, env(nil))
		if err == nil {
			t.Errorf("Load accepted allowed_targets entry %q, which the tunnel refuses", entry)
			continue
		}
		if !strings.Contains(err.Error(), "allowed_targets[1]: "+want) {
			t.Errorf("Load(%q) = %v, want allowed_targets[1]: %s…", entry, err, want)
		}
	}
}

// metrics_listen is off unless set; set, it must name an IP and a port,
// every interface only on purpose (0.0.0.0 / [::]), IPv6 included.
func TestMetricsListen(t *testing.T) {
	base := "control_plane_url: https://cp.example.com\nconnector_name: a\n"
	c, err := Load(writeConfig(t, base), env(nil))
	if err != nil || c.MetricsListen != "" {
		t.Fatalf("default metrics_listen = %q, %v; want off", c.MetricsListen, err)
	}
	for _, ok := range []string{"127.0.0.1:9100", "192.0.2.10:9100", "0.0.0.0:9100", "[::]:9100", "[2001:db8::10]:9100"} {
		if c, err := Load(writeConfig(t, base+"metrics_listen: \""+ok+"\"\n"), env(nil)); err != nil || c.MetricsListen != ok {
			t.Errorf("metrics_listen %q: %+v, %v", ok, c.MetricsListen, err)
		}
	}
	for bad, want := range map[string]string{
		":9100":              "has no address: write the interface's IP, or 0.0.0.0:9100",
		"localhost:9100":     "is not an IP address",
		"192.0.2.10":         "is not IP:PORT",
		"192.0.2.10:0":       "the port must be a number from 1 to 65535",
		"192.0.2.10:metrics": "the port must be a number",
	} {
		_, err := Load(writeConfig(t, base+"metrics_listen: \""+bad+"\"\n"), env(nil))
		if err == nil || !strings.Contains(err.Error(), "metrics_listen: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("metrics_listen %q: Load = %v, want %q", bad, err, want)
		}
	}
	c, err = Load(writeConfig(t, base), env(map[string]string{EnvMetricsListen: "[::1]:9100"}))
	if err != nil || c.MetricsListen != "[::1]:9100" {
		t.Errorf("PAM_METRICS_LISTEN: %q, %v", c.MetricsListen, err)
	}
}
