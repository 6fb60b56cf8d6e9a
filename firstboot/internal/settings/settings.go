// Package settings holds what the first-boot wizard asks for — network,
// hostname, time servers, proxy, control plane and connector name — with
// one validator per field whose message says what is wrong and what is
// expected, and writes it to the deployment-owned /config partition:
// systemd-networkd units, hostname, timesyncd.conf and connector.yaml.
// The enrolment token is never part of Settings.
package settings

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
)

// DefaultControlPlaneURL is offered in the wizard when nothing else is known.
const DefaultControlPlaneURL = "https://connect.vaultpam.com"

// Settings is what the operator configures on first boot. Lists are kept as
// the operator typed them (comma or space separated) so a form can edit them.
type Settings struct {
	Interface       string // link to configure, e.g. "eth0"; "" = first ethernet
	DHCP            bool   // true: IPv4 address, gateway (and DNS unless given) by DHCP
	NoIPv4          bool   // true: no IPv4 at all (IPv6 only); DHCP is then ignored
	Address         string // IPv4 CIDR, e.g. 192.0.2.10/24 (static only)
	Gateway         string // IPv4 (static only)
	IPv6            string // IPv6Off ("" too), IPv6SLAAC, IPv6DHCPv6 or IPv6Static
	Address6        string // IPv6 CIDR, e.g. 2001:db8::10/64 (IPv6Static only)
	Gateway6        string // IPv6 router, global or fe80:: (IPv6Static only)
	VLAN            string // 802.1Q VLAN ID 1-4094 on Interface; "" = untagged
	DNS             string // comma-separated IPs; required unless DHCP, SLAAC or DHCPv6 may send them
	NTP             string // comma-separated host names or IPs; optional
	Hostname        string
	Proxy           string // http://host:port; optional
	ControlPlaneURL string
	ConnectorName   string
	// CACert is a private CA bundle to trust for the control plane (PEM, or
	// base64 of PEM), added to /config/ca.pem by Write; "" keeps the file
	// as it is. Public material only.
	CACert string
}

// Default returns the settings the wizard starts from.
func Default() Settings {
	return Settings{DHCP: true, ControlPlaneURL: DefaultControlPlaneURL}
}

// Field names, used to tie a problem to the input it belongs to.
const (
	FieldInterface    = "interface"
	FieldAddress      = "address"
	FieldGateway      = "gateway"
	FieldIPv6         = "ipv6"
	FieldAddress6     = "address6"
	FieldGateway6     = "gateway6"
	FieldVLAN         = "vlan"
	FieldCACert       = "ca_cert"
	FieldDNS          = "dns"
	FieldNTP          = "ntp"
	FieldHostname     = "hostname"
	FieldProxy        = "proxy"
	FieldControlPlane = "control_plane_url"
	FieldName         = "connector_name"
)

// fieldOrder is the order of the fields in the wizard's forms.
var fieldOrder = []string{FieldInterface, FieldVLAN, FieldAddress, FieldGateway, FieldIPv6, FieldAddress6, FieldGateway6,
	FieldDNS, FieldNTP, FieldHostname, FieldProxy, FieldControlPlane, FieldName, FieldCACert}

// Problem is one invalid field.
type Problem struct {
	Field   string
	Message string // what is wrong and what is expected
}

func (p Problem) Error() string { return p.Message }

// Validate returns every problem (each a Problem) joined, nil when all is well.
func (s Settings) Validate() error {
	var errs []error
	for _, f := range fieldOrder {
		if msg := s.Check(f); msg != "" {
			errs = append(errs, Problem{Field: f, Message: msg})
		}
	}
	return errors.Join(errs...)
}

// Problems returns the invalid fields in form order.
func (s Settings) Problems() []Problem {
	var out []Problem
	for _, f := range fieldOrder {
		if msg := s.Check(f); msg != "" {
			out = append(out, Problem{Field: f, Message: msg})
		}
	}
	return out
}

// Check validates one field and returns "" or a message for people.
func (s Settings) Check(field string) string {
	switch field {
	case FieldInterface:
		return CheckInterface(s.Interface)
	case FieldVLAN:
		return CheckVLAN(s.VLAN, s.Interface)
	case FieldAddress:
		if !s.StaticIPv4() {
			return ""
		}
		return CheckCIDR4(s.Address)
	case FieldGateway:
		if !s.StaticIPv4() {
			return ""
		}
		return CheckGateway(s.Gateway, s.Address)
	case FieldIPv6:
		return CheckIPv6Mode(s.IPv6, s.NoIPv4)
	case FieldAddress6:
		if s.ipv6Mode() != IPv6Static {
			return ""
		}
		return CheckCIDR6(s.Address6)
	case FieldGateway6:
		if s.ipv6Mode() != IPv6Static {
			return ""
		}
		return CheckGateway6(s.Gateway6, s.Address6)
	case FieldCACert:
		return CheckCABundle(s.CACert)
	case FieldDNS:
		if s.AutoDNS() && strings.TrimSpace(s.DNS) == "" {
			return ""
		}
		return CheckIPList("DNS servers", s.DNS)
	case FieldNTP:
		return CheckHostList("NTP servers", s.NTP)
	case FieldHostname:
		return CheckHostname(s.Hostname)
	case FieldProxy:
		return CheckProxy(s.Proxy)
	case FieldControlPlane:
		return CheckControlPlaneURL(s.ControlPlaneURL)
	case FieldName:
		return CheckConnectorName(s.ConnectorName)
	}
	return ""
}

// CheckInterface validates the name of the network card to configure. It
// goes into the networkd unit's [Match] section, so it must be a plain
// Linux interface name (at most 15 characters, no spaces, slashes or
// line breaks), whoever sends it.
func CheckInterface(v string) string {
	switch {
	case v == "":
		return "Interface: none chosen; pick the network card to configure"
	case !ifaceRE.MatchString(v) || v == "." || v == "..":
		return fmt.Sprintf("Interface: %q is not a network interface name; expected up to 15 letters, digits, dots, hyphens or underscores, like eth0 or ens192", v)
	}
	return ""
}

// CheckCIDR validates a static address with prefix.
func CheckCIDR(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return "IP address: empty; expected an address with prefix length, like 192.0.2.10/24"
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		if _, err2 := netip.ParseAddr(v); err2 == nil {
			return fmt.Sprintf("IP address: %q has no prefix length; expected like %s/24", v, v)
		}
		return fmt.Sprintf("IP address: %q is not an IP address with prefix; expected like 192.0.2.10/24", v)
	}
	a := p.Addr()
	switch {
	case a.Is4() && (p.Bits() < 8 || p.Bits() > 30):
		return fmt.Sprintf("IP address: prefix /%d is unusual for a host; expected /8 to /30, like /24", p.Bits())
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast():
		return fmt.Sprintf("IP address: %s cannot be used for this appliance; expected a unicast address", a)
	case a.Is4() && p.Bits() < 31 && (a == p.Masked().Addr() || a == lastAddr(p)):
		return fmt.Sprintf("IP address: %s is the network or broadcast address of %s; pick a host address", a, p.Masked())
	}
	return ""
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// CheckGateway validates the default gateway against the static address.
func CheckGateway(gw, cidr string) string {
	gw = strings.TrimSpace(gw)
	if gw == "" {
		return "Gateway: empty; expected the router's IP address in the same subnet, like 192.0.2.1"
	}
	a, err := netip.ParseAddr(gw)
	if err != nil {
		return fmt.Sprintf("Gateway: %q is not an IP address; expected like 192.0.2.1", gw)
	}
	if p, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err == nil {
		if !p.Masked().Contains(a) {
			return fmt.Sprintf("Gateway: %s is not in the subnet %s; expected an address inside it", a, p.Masked())
		}
		if a == p.Addr() {
			return "Gateway: same as the appliance's own address; expected the router's address"
		}
	}
	return ""
}

// SplitList splits a comma- or space-separated list.
func SplitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
}

// CheckIPList validates a non-empty list of IP addresses.
func CheckIPList(what, v string) string {
	items := SplitList(v)
	if len(items) == 0 {
		return what + ": empty; expected one or more IP addresses separated by commas, like 192.0.2.53"
	}
	for _, it := range items {
		if _, err := netip.ParseAddr(it); err != nil {
			return fmt.Sprintf("%s: %q is not an IP address; expected addresses separated by commas, like 192.0.2.53, 198.51.100.53", what, it)
		}
	}
	return ""
}

// CheckHostList validates an optional list of host names or IPs.
func CheckHostList(what, v string) string {
	for _, it := range SplitList(v) {
		if _, err := netip.ParseAddr(it); err == nil {
			continue
		}
		if !hostRE.MatchString(it) {
			return fmt.Sprintf("%s: %q is not a host name or IP address; expected like pool.ntp.org, 192.0.2.123 (or empty)", what, it)
		}
	}
	return ""
}

var (
	labelRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	hostRE  = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	nameRE  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)
	ifaceRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,15}$`)
)

// CheckHostname validates the appliance's host name (one DNS label, or a
// fully qualified name).
func CheckHostname(v string) string {
	switch {
	case v == "":
		return "Hostname: empty; expected a name like vaultpam-dc1 (letters, digits, hyphens)"
	case len(v) > 64:
		return fmt.Sprintf("Hostname: %q is longer than 64 characters, the kernel's limit; expected a shorter name like vaultpam-dc1", v)
	case !hostRE.MatchString(v):
		return fmt.Sprintf("Hostname: %q is not valid; expected letters, digits and hyphens, not starting or ending with a hyphen, like vaultpam-dc1", v)
	case !labelRE.MatchString(strings.Split(v, ".")[0]):
		return fmt.Sprintf("Hostname: %q is not valid; expected like vaultpam-dc1", v)
	}
	return ""
}

// CheckProxy validates the optional HTTP proxy URL.
func CheckProxy(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "http" || u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Sprintf("HTTP proxy: %q is not valid; expected http://host:port, like http://proxy.internal:3128 (or empty for none)", v)
	}
	if u.User != nil {
		return "HTTP proxy: credentials in the URL are not supported; expected http://host:port"
	}
	return ""
}

// CheckControlPlaneURL validates the control plane URL (https://HOST[:PORT]).
func CheckControlPlaneURL(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return "Control plane URL: empty; expected https://HOST or https://HOST:PORT"
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return fmt.Sprintf("Control plane URL: %q is not a URL; expected https://HOST or https://HOST:PORT", v)
	}
	if u.Scheme != "https" {
		return fmt.Sprintf("Control plane URL: scheme %q is not allowed; expected https://", u.Scheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "Control plane URL: has a path, query or credentials; expected only https://HOST[:PORT]"
	}
	h := u.Hostname()
	if _, err := netip.ParseAddr(h); err != nil && !hostRE.MatchString(h) {
		return fmt.Sprintf("Control plane URL: host %q is not a host name or IP address", h)
	}
	return ""
}

// CheckConnectorName validates the connector's display name.
func CheckConnectorName(v string) string {
	if v == "" {
		return "Connector name: empty; expected a name like dc1-connector-1 (letters, digits, . _ -)"
	}
	if !nameRE.MatchString(v) {
		return fmt.Sprintf("Connector name: %q is not valid; expected up to 63 letters, digits, dots, underscores or hyphens, like dc1-connector-1", v)
	}
	return ""
}

// ControlPlaneHostPort returns host and port (443 when not given) of a
// valid control plane URL.
func ControlPlaneHostPort(v string) (host, port string) {
	u, err := url.Parse(strings.TrimSpace(v))
	if err != nil {
		return "", ""
	}
	port = u.Port()
	if port == "" {
		port = "443"
	}
	return u.Hostname(), port
}
