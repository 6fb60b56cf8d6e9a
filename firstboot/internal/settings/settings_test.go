package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheckMessages(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"bad octet", CheckCIDR("192.0.2.300/24"), `IP address: "192.0.2.300/24" is not an IP address with prefix; expected like 192.0.2.10/24`},
		{"no prefix", CheckCIDR("192.0.2.10"), `IP address: "192.0.2.10" has no prefix length; expected like 192.0.2.10/24`},
		{"network addr", CheckCIDR("192.0.2.0/24"), `IP address: 192.0.2.0 is the network or broadcast address of 192.0.2.0/24; pick a host address`},
		{"ok", CheckCIDR("192.0.2.10/24"), ""},
		{"gw outside", CheckGateway("198.51.100.1", "192.0.2.10/24"), "Gateway: 198.51.100.1 is not in the subnet 192.0.2.0/24; expected an address inside it"},
		{"dns", CheckIPList("DNS servers", "192.0.2.53, dns.example"), `DNS servers: "dns.example" is not an IP address; expected addresses separated by commas, like 192.0.2.53, 198.51.100.53`},
		{"host", CheckHostname("-bad"), `Hostname: "-bad" is not valid; expected letters, digits and hyphens, not starting or ending with a hyphen, like vaultpam-dc1`},
		{"url scheme", CheckControlPlaneURL("http://cp.example.com"), `Control plane URL: scheme "http" is not allowed; expected https://`},
		{"url ok", CheckControlPlaneURL("https://cp.example.com:8443"), ""},
		{"proxy", CheckProxy("proxy:3128"), `HTTP proxy: "proxy:3128" is not valid; expected http://host:port, like http://proxy.internal:3128 (or empty for none)`},
		{"proxy ok", CheckProxy("http://proxy.internal:3128"), ""},
		{"iface ok", CheckInterface("ens192"), ""},
		{"iface newline", CheckInterface("eth0\n[Network]"), `Interface: "eth0\n[Network]" is not a network interface name; expected up to 15 letters, digits, dots, hyphens or underscores, like eth0 or ens192`},
		{"iface long", CheckInterface("a234567890123456"), `Interface: "a234567890123456" is not a network interface name; expected up to 15 letters, digits, dots, hyphens or underscores, like eth0 or ens192`},
		{"iface dotdot", CheckInterface(".."), `Interface: ".." is not a network interface name; expected up to 15 letters, digits, dots, hyphens or underscores, like eth0 or ens192`},
		{"host long", CheckHostname(strings.Repeat("a", 30) + "." + strings.Repeat("b", 34)), `Hostname: "` + strings.Repeat("a", 30) + "." + strings.Repeat("b", 34) + `" is longer than 64 characters, the kernel's limit; expected a shorter name like vaultpam-dc1`},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestValidateJoinsEveryProblem(t *testing.T) {
	s := Settings{DHCP: false, Address: "x", Gateway: "", ControlPlaneURL: "ftp://a"}
	var fields []string
	for _, p := range s.Problems() {
		fields = append(fields, p.Field)
	}
	want := []string{FieldInterface, FieldAddress, FieldGateway, FieldDNS, FieldHostname, FieldControlPlane, FieldName}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("Problems() fields (-want +got):\n%s", diff)
	}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "Gateway: empty") {
		t.Errorf("Validate() = %v, want it to name the gateway", err)
	}
}

func TestWriteAndLoadRoundTrip(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "config"), 0o755)
	os.WriteFile(filepath.Join(root, ConnectorYAML), []byte("allowed_targets: [\"10.20.0.0/16\"]\nconnector_name: old\n"), 0o644)
	s := Settings{Interface: "eth0", Address: "192.0.2.10/24", Gateway: "192.0.2.1", DNS: "192.0.2.53, 198.51.100.53",
		NTP: "ntp.example.com", Hostname: "vaultpam-dc1", Proxy: "http://proxy.internal:3128",
		ControlPlaneURL: "https://cp.example.com/", ConnectorName: "dc1-connector-1"}
	if _, err := s.Write(root); err != nil {
		t.Fatal(err)
	}
	unit, _ := os.ReadFile(filepath.Join(root, NetworkUnit))
	for _, want := range []string{"Name=eth0", "Address=192.0.2.10/24", "Gateway=192.0.2.1", "DNS=192.0.2.53", "DNS=198.51.100.53", "NTP=ntp.example.com"} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("network unit lacks %q:\n%s", want, unit)
		}
	}
	cy, _ := os.ReadFile(filepath.Join(root, ConnectorYAML))
	for _, want := range []string{"control_plane_url: https://cp.example.com\n", "connector_name: dc1-connector-1\n", "proxy_url: http://proxy.internal:3128\n", "10.20.0.0/16"} {
		if !strings.Contains(string(cy), want) {
			t.Errorf("connector.yaml lacks %q:\n%s", want, cy)
		}
	}
	got := Load(root)
	s.ControlPlaneURL = "https://cp.example.com"
	if diff := cmp.Diff(s, got); diff != "" {
		t.Errorf("Load after Write (-want +got):\n%s", diff)
	}
}
