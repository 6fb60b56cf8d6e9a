// Package ovfenv reads the OVF environment that vSphere hands a deployed
// appliance — through VMware Tools (guestinfo.ovfEnv) or as ovf-env.xml on a
// virtual CD-ROM (the ISO transport) — and turns its vaultpam.* properties
// into first-boot settings and an enrolment token.
package ovfenv

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// Property keys of the appliance's ProductSection (all strings, empty = not set).
const (
	KeyToken         = "vaultpam.token"
	KeyControlPlane  = "vaultpam.control_plane_url"
	KeyConnectorName = "vaultpam.connector_name"
	KeyHostname      = "vaultpam.hostname"
	KeyIP            = "vaultpam.ip"
	KeyGateway       = "vaultpam.gateway"
	KeyDNS           = "vaultpam.dns"
	KeyNTP           = "vaultpam.ntp"
	KeyProxy         = "vaultpam.proxy"
	KeyIPv6          = "vaultpam.ipv6"
	KeyIPv6Gateway   = "vaultpam.ipv6_gateway"
	KeyVLAN          = "vaultpam.vlan"
	KeyCACert        = "vaultpam.ca_cert"
)

// IPNone as vaultpam.ip means no IPv4 at all (an IPv6-only network).
const IPNone = "none"

// Env is a parsed OVF environment: its properties by key.
type Env struct {
	Properties map[string]string
}

// Parse reads an OVF environment document.
func Parse(doc []byte) (Env, error) {
	var x struct {
		Props []struct {
			Key   string `xml:"key,attr"`
			Value string `xml:"value,attr"`
		} `xml:"PropertySection>Property"`
	}
	if err := xml.Unmarshal(doc, &x); err != nil {
		return Env{}, fmt.Errorf("parsing OVF environment: %w", err)
	}
	env := Env{Properties: map[string]string{}}
	for _, p := range x.Props {
		env.Properties[p.Key] = strings.TrimSpace(p.Value)
	}
	return env, nil
}

// Apply copies the properties that are set into s and returns the token
// property ("" when not set). vaultpam.ip empty means DHCP, "none" no
// IPv4; vaultpam.ipv6 is empty (off), "slaac", "dhcpv6" or a static
// address with prefix; vaultpam.ca_cert is PEM or base64 of PEM.
func (e Env) Apply(s *settings.Settings) (token string) {
	p := e.Properties
	set := func(key string, dst *string) {
		if v := p[key]; v != "" {
			*dst = v
		}
	}
	set(KeyControlPlane, &s.ControlPlaneURL)
	set(KeyConnectorName, &s.ConnectorName)
	set(KeyHostname, &s.Hostname)
	switch v := p[KeyIP]; {
	case strings.EqualFold(v, IPNone):
		s.DHCP, s.NoIPv4 = false, true
	case v != "":
		s.DHCP = false
		s.Address = v
	}
	switch v := p[KeyIPv6]; {
	case v == "":
	case strings.EqualFold(v, settings.IPv6Off), strings.EqualFold(v, settings.IPv6SLAAC), strings.EqualFold(v, settings.IPv6DHCPv6):
		s.IPv6 = strings.ToLower(v)
	case strings.Contains(v, ":"):
		s.IPv6, s.Address6 = settings.IPv6Static, v
	default:
		s.IPv6 = v // not a mode: the wizard shows what is wrong with it
	}
	set(KeyIPv6Gateway, &s.Gateway6)
	set(KeyVLAN, &s.VLAN)
	set(KeyCACert, &s.CACert)
	set(KeyGateway, &s.Gateway)
	set(KeyDNS, &s.DNS)
	set(KeyNTP, &s.NTP)
	set(KeyProxy, &s.Proxy)
	return p[KeyToken]
}

// ErrNotFound means no source had an OVF environment (a plain VM, not
// deployed from the OVA with properties).
var ErrNotFound = errors.New("no OVF environment found")

// Sources says where to look, in order. Empty fields are skipped.
type Sources struct {
	File string // a file holding the document (tests, or a copied env)
	// GuestInfo returns VMware Tools' guestinfo.ovfEnv as it is (on the
	// appliance the console's root helper runs vmware-rpctool for it);
	// an error or nothing means none.
	GuestInfo func(ctx context.Context) ([]byte, error)
	CDROMs    []string // block devices or image files holding an ISO 9660 filesystem
	MaxBytes  int64    // 0 = 1 MiB
}

// Load returns the first OVF environment found and where it came from.
func (s Sources) Load(ctx context.Context) (Env, string, error) {
	if s.File != "" {
		b, err := os.ReadFile(s.File)
		if err != nil {
			return Env{}, "", fmt.Errorf("reading OVF environment: %w", err)
		}
		env, err := Parse(b)
		return env, s.File, err
	}
	if s.GuestInfo != nil {
		out, err := s.GuestInfo(ctx)
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			env, err := Parse(out)
			return env, "guestinfo.ovfEnv", err
		}
	}
	max := s.MaxBytes
	if max == 0 {
		max = 1 << 20
	}
	for _, dev := range s.CDROMs {
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		b, err := ReadISOFile(f, "ovf-env.xml", max)
		f.Close()
		if err != nil {
			continue
		}
		env, err := Parse(b)
		return env, dev, err
	}
	return Env{}, "", ErrNotFound
}
