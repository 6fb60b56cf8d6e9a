package ovfenv

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

func fixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/ovf-env-full.xml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseAndApply(t *testing.T) {
	env, err := Parse(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	s := settings.Default()
	s.Interface = "eth0"
	tok := env.Apply(&s)
	if tok == "" {
		t.Fatal("Apply() returned no token, want the fixture's")
	}
	want := settings.Settings{Interface: "eth0", Address: "192.0.2.10/24", Gateway: "192.0.2.1",
		DNS: "192.0.2.53", NTP: "192.0.2.123", Hostname: "vaultpam-ovf", ControlPlaneURL: "https://192.0.2.1:8443",
		ConnectorName: "ovf-connector-1"}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("settings after Apply (-want +got):\n%s", diff)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("fixture settings do not validate: %v", err)
	}
}

// guestInfo returns out as VMware Tools' guestinfo.ovfEnv.
func guestInfo(out []byte) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) { return out, nil }
}

func TestLoadFromGuestinfo(t *testing.T) {
	env, src, err := Sources{GuestInfo: guestInfo(fixture(t))}.Load(context.Background())
	if err != nil || src != "guestinfo.ovfEnv" || env.Properties[KeyHostname] != "vaultpam-ovf" {
		t.Errorf("Load() = %v, %q, %v; want the fixture from guestinfo.ovfEnv", env.Properties[KeyHostname], src, err)
	}
}

func TestLoadFromISO(t *testing.T) {
	doc := fixture(t)
	iso := filepath.Join(t.TempDir(), "env.iso")
	if err := os.WriteFile(iso, makeISO("OVF_ENV.XML;1", doc), 0o644); err != nil {
		t.Fatal(err)
	}
	env, src, err := Sources{GuestInfo: guestInfo(nil), CDROMs: []string{"/nonexistent/sr0", iso}}.Load(context.Background())
	if err != nil || src != iso || env.Properties[KeyConnectorName] != "ovf-connector-1" {
		t.Errorf("Load() = %v, %q, %v; want the fixture from the ISO", env.Properties, src, err)
	}
	if _, _, err := (Sources{CDROMs: []string{"/nonexistent/sr0"}}).Load(context.Background()); err != ErrNotFound {
		t.Errorf("Load() with nothing = %v, want ErrNotFound", err)
	}
}

// makeISO builds the smallest ISO 9660 image with one file in its root:
// system area, primary volume descriptor, terminator, root directory, data.
func makeISO(name string, data []byte) []byte {
	const bs = 2048
	img := make([]byte, 20*bs+len(data)+bs)
	dirRec := func(ext, size uint32, flags byte, id []byte) []byte {
		n := 33 + len(id)
		if n%2 == 1 {
			n++
		}
		r := make([]byte, n)
		r[0] = byte(n)
		binary.LittleEndian.PutUint32(r[2:], ext)
		binary.BigEndian.PutUint32(r[6:], ext)
		binary.LittleEndian.PutUint32(r[10:], size)
		binary.BigEndian.PutUint32(r[14:], size)
		r[25] = flags
		r[32] = byte(len(id))
		copy(r[33:], id)
		return r
	}
	pvd := img[16*bs:]
	pvd[0] = 1
	copy(pvd[1:], "CD001")
	pvd[6] = 1
	binary.LittleEndian.PutUint16(pvd[128:], bs)
	copy(pvd[156:], dirRec(18, bs, 2, []byte{0}))
	term := img[17*bs:]
	term[0] = 255
	copy(term[1:], "CD001")
	var dir bytes.Buffer
	dir.Write(dirRec(18, bs, 2, []byte{0}))
	dir.Write(dirRec(18, bs, 2, []byte{1}))
	dir.Write(dirRec(19, uint32(len(data)), 0, []byte(name)))
	copy(img[18*bs:], dir.Bytes())
	copy(img[19*bs:], data)
	return img
}

// TestApplyIPv6VLANAndCA: vaultpam.ip=none, a static IPv6 address, the
// VLAN and the CA bundle land in the settings, which validate.
func TestApplyIPv6VLANAndCA(t *testing.T) {
	ca := "-----BEGIN CERTIFICATE----- MIIBhTCCASugAwIBAgIBBzAKBggqhkjOPQQDAjAVMRMwEQYDVQQDEwpUZXN0IENB IENBMB4XDTI2MDEwMTAwMDAwMFoXDTM2MDEwMTAwMDAwMFowFTETMBEGA1UEAxMK -----END CERTIFICATE-----"
	env := Env{Properties: map[string]string{KeyIP: "None", KeyIPv6: "2001:db8::10/64", KeyIPv6Gateway: "fe80::1",
		KeyVLAN: "42", KeyDNS: "2001:db8::53", KeyCACert: ca, KeyHostname: "v6", KeyControlPlane: "https://[2001:db8::1]:8443"}}
	s := settings.Default()
	s.Interface = "ens192"
	env.Apply(&s)
	if !s.NoIPv4 || s.DHCP || s.IPv6 != settings.IPv6Static || s.Address6 != "2001:db8::10/64" || s.Gateway6 != "fe80::1" || s.VLAN != "42" || s.CACert != ca {
		t.Errorf("settings after Apply: %+v", s)
	}
	for _, mode := range []string{"slaac", "DHCPv6", "off"} {
		s := settings.Default()
		Env{Properties: map[string]string{KeyIPv6: mode}}.Apply(&s)
		if s.IPv6 != strings.ToLower(mode) {
			t.Errorf("vaultpam.ipv6=%s gave mode %q", mode, s.IPv6)
		}
	}
}
