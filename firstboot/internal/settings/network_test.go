package settings

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func base() Settings {
	return Settings{Interface: "eth0", Hostname: "vaultpam-dc1", ControlPlaneURL: "https://cp.example.com", ConnectorName: "dc1"}
}

// TestIPv6OnlyVLANRoundTrip: static IPv6 only on VLAN 42 becomes a
// .netdev, a parent unit that only carries the VLAN, and the VLAN's unit
// with the address; Load reads the same settings back.
func TestIPv6OnlyVLANRoundTrip(t *testing.T) {
	root := t.TempDir()
	s := base()
	s.NoIPv4, s.IPv6, s.Address6, s.Gateway6, s.VLAN, s.DNS = true, IPv6Static, "2001:db8::10/64", "2001:db8::1", "42", "2001:db8::53"
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	files, err := s.Write(root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(files, " "), VLANNetdev) {
		t.Errorf("files written %v lack the .netdev", files)
	}
	parent := readT(t, root, NetworkUnit)
	for _, want := range []string{"Name=eth0\n", "VLAN=eth0.42\n", "LinkLocalAddressing=no\n"} {
		if !strings.Contains(parent, want) {
			t.Errorf("parent unit lacks %q:\n%s", want, parent)
		}
	}
	if strings.Contains(parent, "Address=") {
		t.Errorf("parent unit carries an address, the VLAN should:\n%s", parent)
	}
	netdev := readT(t, root, VLANNetdev)
	for _, want := range []string{"Name=eth0.42\n", "Kind=vlan\n", "[VLAN]\nId=42\n"} {
		if !strings.Contains(netdev, want) {
			t.Errorf(".netdev lacks %q:\n%s", want, netdev)
		}
	}
	vlan := readT(t, root, VLANUnit)
	for _, want := range []string{"Name=eth0.42\n", "Address=2001:db8::10/64\n", "Gateway=2001:db8::1\n", "DNS=2001:db8::53\n", "LinkLocalAddressing=ipv6\n", "IPv6AcceptRA=no\n"} {
		if !strings.Contains(vlan, want) {
			t.Errorf("VLAN unit lacks %q:\n%s", want, vlan)
		}
	}
	if strings.Contains(vlan, "DHCP=") {
		t.Errorf("IPv6-only static unit asks for DHCP:\n%s", vlan)
	}
	got := Load(root)
	if diff := cmp.Diff(s, got); diff != "" {
		t.Errorf("Load after Write (-want +got):\n%s", diff)
	}

	// Back to untagged DHCP: the VLAN files go.
	s2 := base()
	s2.DHCP = true
	if _, err := s2.Write(root); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{VLANNetdev, VLANUnit} {
		if _, err := os.Stat(filepath.Join(root, f)); !os.IsNotExist(err) {
			t.Errorf("%s still there after the VLAN was removed (%v)", f, err)
		}
	}
}

func TestDualStackUnits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Settings)
		wants []string
	}{
		{"dhcp4+slaac", func(s *Settings) { s.DHCP, s.IPv6 = true, IPv6SLAAC },
			[]string{"DHCP=ipv4\n", "IPv6AcceptRA=yes\n", "LinkLocalAddressing=ipv6\n", "[DHCPv4]\n"}},
		{"dhcp4+dhcpv6", func(s *Settings) { s.DHCP, s.IPv6 = true, IPv6DHCPv6 },
			[]string{"DHCP=yes\n", "DHCPv6Client=always\n", "[DHCPv6]\n"}},
		{"static4+static6", func(s *Settings) {
			s.Address, s.Gateway, s.DNS, s.IPv6, s.Address6, s.Gateway6 = "192.0.2.10/24", "192.0.2.1", "192.0.2.53", IPv6Static, "2001:db8::10/64", "fe80::1"
		}, []string{"Address=192.0.2.10/24\n", "Gateway=192.0.2.1\n", "Address=2001:db8::10/64\n", "Gateway=fe80::1\n"}},
		{"v6 slaac only, DNS from RA", func(s *Settings) { s.NoIPv4, s.IPv6 = true, IPv6SLAAC },
			[]string{"IPv6AcceptRA=yes\n"}},
	} {
		s := base()
		tc.edit(&s)
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		u := s.NetworkUnitText()
		for _, w := range tc.wants {
			if !strings.Contains(u, w) {
				t.Errorf("%s: unit lacks %q:\n%s", tc.name, w, u)
			}
		}
		root := t.TempDir()
		if _, err := s.Write(root); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s, Load(root)); diff != "" {
			t.Errorf("%s: Load after Write (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestIPv6AndVLANMessages(t *testing.T) {
	for _, tc := range []struct{ name, got, want string }{
		{"no family", CheckIPv6Mode("off", true), "IPv6: off, and IPv4 is off too; the appliance needs at least one: choose DHCP or Static for IPv4, or an IPv6 mode"},
		{"bad mode", CheckIPv6Mode("auto", false), `IPv6: "auto" is not a mode; expected one of off, slaac, dhcpv6, static`},
		{"v4 in v6", CheckCIDR6("192.0.2.10/24"), "IPv6 address: 192.0.2.10 is not an IPv6 address; expected like 2001:db8::10/64"},
		{"no prefix", CheckCIDR6("2001:db8::10"), `IPv6 address: "2001:db8::10" has no prefix length; expected like 2001:db8::10/64`},
		{"link-local", CheckCIDR6("fe80::10/64"), "IPv6 address: fe80::10 cannot be used for this appliance; expected a global or unique-local unicast address"},
		{"gw outside", CheckGateway6("2001:db8:1::1", "2001:db8::10/64"), "IPv6 gateway: 2001:db8:1::1 is not in the subnet 2001:db8::/64; expected an address inside it, or the router's link-local address (fe80::…)"},
		{"gw ll", CheckGateway6("fe80::1", "2001:db8::10/64"), ""},
		{"v6 in v4 field", CheckCIDR4("2001:db8::10/64"), "IP address: 2001:db8::10 is an IPv6 address; type it in the IPv6 address field, and here an IPv4 address like 192.0.2.10/24"},
		{"vlan 0", CheckVLAN("0", "eth0"), `VLAN ID: "0" is not a VLAN ID; expected a number from 1 to 4094 (or empty for an untagged network)`},
		{"vlan 4095", CheckVLAN("4095", "eth0"), `VLAN ID: "4095" is not a VLAN ID; expected a number from 1 to 4094 (or empty for an untagged network)`},
		{"vlan 042", CheckVLAN("042", "eth0"), `VLAN ID: "042" is not a VLAN ID; expected a number from 1 to 4094 (or empty for an untagged network)`},
		{"vlan long", CheckVLAN("4000", "enp11s0f1np1"), "VLAN ID: the VLAN interface enp11s0f1np1.4000 would have a name longer than 15 characters; use a card with a shorter name"},
		{"vlan ok", CheckVLAN("42", "ens192"), ""},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	s := base()
	s.NoIPv4, s.IPv6, s.Address6, s.Gateway6 = true, IPv6Static, "2001:db8::10/64", "2001:db8::1"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "DNS servers: empty") {
		t.Errorf("static IPv6 without DNS: Validate() = %v, want the DNS named", err)
	}
}

func testCA(t *testing.T, cn string) (*x509.Certificate, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestCABundleForms: PEM, base64 of PEM, and PEM whose line breaks an XML
// attribute turned into spaces all give the certificate; a private key is
// refused by name.
func TestCABundleForms(t *testing.T) {
	c, p := testCA(t, "Inspecting Proxy CA")
	for name, in := range map[string]string{
		"pem":    string(p),
		"base64": base64.StdEncoding.EncodeToString(p),
		"base64 wrapped": func() string {
			b := base64.StdEncoding.EncodeToString(p)
			return b[:40] + "\n " + b[40:]
		}(),
		"spaces": strings.ReplaceAll(string(p), "\n", " "),
	} {
		got, err := ParseCABundle([]byte(in))
		if err != nil || len(got) != 1 || !got[0].Equal(c) {
			t.Errorf("%s: ParseCABundle = %d certs, %v; want the CA", name, len(got), err)
		}
	}
	key := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----\n"
	_, err := ParseCABundle([]byte(string(p) + key))
	if err == nil || err.Error() != "CA certificate: block 2 is a private key (EC PRIVATE KEY); give only the CA's certificate, never a key" {
		t.Errorf("bundle with a key: %v", err)
	}
	if strings.Contains(fmtErr(err), "MHcCAQ") {
		t.Errorf("the error repeats the key: %v", err)
	}
	if msg := CheckCABundle("hello"); msg != "CA certificate: neither PEM nor base64 of PEM; expected the CA's certificate as -----BEGIN CERTIFICATE----- … or that text base64-encoded" {
		t.Errorf("garbage: %q", msg)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestAddCAKeepsAndPoints: trusting a second CA keeps the first, adds the
// new one once, and points connector.yaml at the bundle, other keys kept.
func TestAddCAKeepsAndPoints(t *testing.T) {
	root := t.TempDir()
	labCA, labPEM := testCA(t, "Lab CA")
	proxyCA, _ := testCA(t, "Proxy CA")
	os.MkdirAll(filepath.Join(root, "config"), 0o755)
	os.WriteFile(filepath.Join(root, CAFile), labPEM, 0o644)
	os.WriteFile(filepath.Join(root, ConnectorYAML), []byte("control_plane_url: https://cp.example.com\nallowed_targets: [\"10.0.0.0/8\"]\n"), 0o644)
	for i := 0; i < 2; i++ {
		n, err := AddCA(root, []*x509.Certificate{proxyCA})
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 - i; n != want {
			t.Errorf("AddCA #%d added %d, want %d", i+1, n, want)
		}
	}
	got, err := ParseCABundle([]byte(readT(t, root, CAFile)))
	if err != nil || len(got) != 2 || !got[0].Equal(labCA) || !got[1].Equal(proxyCA) {
		t.Errorf("bundle after AddCA: %d certs, %v; want the lab CA then the proxy CA", len(got), err)
	}
	cy := readT(t, root, ConnectorYAML)
	for _, want := range []string{"control_plane_ca_file: /config/ca.pem", "10.0.0.0/8", "control_plane_url: https://cp.example.com"} {
		if !strings.Contains(cy, want) {
			t.Errorf("connector.yaml lacks %q:\n%s", want, cy)
		}
	}
}

func readT(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
