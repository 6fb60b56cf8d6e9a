package settings

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// IPv6 modes (Settings.IPv6). "" means IPv6Off.
const (
	IPv6Off    = "off"    // no IPv6 on the link, not even a link-local address
	IPv6SLAAC  = "slaac"  // router advertisements; DHCPv6 too when they ask for it
	IPv6DHCPv6 = "dhcpv6" // router advertisements, and DHCPv6 always
	IPv6Static = "static" // Address6 via Gateway6
)

// IPv6Modes lists the modes in the order the wizard offers them.
func IPv6Modes() []string { return []string{IPv6Off, IPv6SLAAC, IPv6DHCPv6, IPv6Static} }

// ipv6Mode returns s.IPv6 with "" as IPv6Off.
func (s Settings) ipv6Mode() string {
	if s.IPv6 == "" {
		return IPv6Off
	}
	return s.IPv6
}

// HasIPv4 reports whether the link gets an IPv4 address (DHCP or static).
func (s Settings) HasIPv4() bool { return !s.NoIPv4 }

// StaticIPv4 reports whether the IPv4 address is typed in.
func (s Settings) StaticIPv4() bool { return !s.NoIPv4 && !s.DHCP }

// AutoDNS reports whether DNS servers may come from the network (DHCPv4,
// router advertisements or DHCPv6), so that typing none is fine.
func (s Settings) AutoDNS() bool {
	m := s.ipv6Mode()
	return (s.DHCP && !s.NoIPv4) || m == IPv6SLAAC || m == IPv6DHCPv6
}

// LinkName is the link that carries the addresses: the VLAN interface
// (Interface.VLAN, e.g. ens192.42) when a VLAN is set, else Interface.
func (s Settings) LinkName() string {
	if v := strings.TrimSpace(s.VLAN); v != "" {
		return s.Interface + "." + v
	}
	return s.Interface
}

// CheckIPv6Mode validates the IPv6 mode, and that the link gets at least
// one address family.
func CheckIPv6Mode(mode string, noIPv4 bool) string {
	if mode == "" {
		mode = IPv6Off
	}
	ok := false
	for _, m := range IPv6Modes() {
		ok = ok || m == mode
	}
	switch {
	case !ok:
		return fmt.Sprintf("IPv6: %q is not a mode; expected one of %s", mode, strings.Join(IPv6Modes(), ", "))
	case noIPv4 && mode == IPv6Off:
		return "IPv6: off, and IPv4 is off too; the appliance needs at least one: choose DHCP or Static for IPv4, or an IPv6 mode"
	}
	return ""
}

// CheckCIDR4 validates a static IPv4 address with prefix.
func CheckCIDR4(v string) string {
	if msg := CheckCIDR(v); msg != "" {
		return msg
	}
	if p, _ := netip.ParsePrefix(strings.TrimSpace(v)); !p.Addr().Is4() {
		return fmt.Sprintf("IP address: %s is an IPv6 address; type it in the IPv6 address field, and here an IPv4 address like 192.0.2.10/24", p.Addr())
	}
	return ""
}

// CheckCIDR6 validates a static IPv6 address with prefix length.
func CheckCIDR6(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return "IPv6 address: empty; expected an address with prefix length, like 2001:db8::10/64"
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		if _, err2 := netip.ParseAddr(v); err2 == nil {
			return fmt.Sprintf("IPv6 address: %q has no prefix length; expected like %s/64", v, v)
		}
		return fmt.Sprintf("IPv6 address: %q is not an IPv6 address with prefix; expected like 2001:db8::10/64", v)
	}
	a := p.Addr()
	switch {
	case !a.Is6() || a.Is4In6():
		return fmt.Sprintf("IPv6 address: %s is not an IPv6 address; expected like 2001:db8::10/64", a)
	case p.Bits() < 8 || p.Bits() > 128:
		return fmt.Sprintf("IPv6 address: prefix /%d is unusual for a host; expected /8 to /128, usually /64", p.Bits())
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast():
		return fmt.Sprintf("IPv6 address: %s cannot be used for this appliance; expected a global or unique-local unicast address", a)
	}
	return ""
}

// CheckGateway6 validates the IPv6 default gateway: a link-local address
// (fe80::…, what routers usually announce) or one inside the static
// address's subnet.
func CheckGateway6(gw, cidr string) string {
	gw = strings.TrimSpace(gw)
	if gw == "" {
		return "IPv6 gateway: empty; expected the router's IPv6 address, like 2001:db8::1 or fe80::1"
	}
	a, err := netip.ParseAddr(gw)
	if err != nil || !a.Is6() || a.Is4In6() || strings.Contains(gw, "%") {
		return fmt.Sprintf("IPv6 gateway: %q is not an IPv6 address; expected like 2001:db8::1 or fe80::1", gw)
	}
	if a.IsLinkLocalUnicast() {
		return ""
	}
	if p, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err == nil {
		if !p.Masked().Contains(a) {
			return fmt.Sprintf("IPv6 gateway: %s is not in the subnet %s; expected an address inside it, or the router's link-local address (fe80::…)", a, p.Masked())
		}
		if a == p.Addr() {
			return "IPv6 gateway: same as the appliance's own address; expected the router's address"
		}
	}
	return ""
}

// CheckVLAN validates the optional 802.1Q VLAN ID; iface is the parent
// link, whose name and the ID make the VLAN interface's name.
func CheckVLAN(v, iface string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 4094 || strconv.Itoa(n) != v {
		return fmt.Sprintf("VLAN ID: %q is not a VLAN ID; expected a number from 1 to 4094 (or empty for an untagged network)", v)
	}
	if len(iface)+1+len(v) > 15 {
		return fmt.Sprintf("VLAN ID: the VLAN interface %s.%s would have a name longer than 15 characters; use a card with a shorter name", iface, v)
	}
	return ""
}

// networkBody renders the [Network] and DHCP sections that put s's
// addresses on a link.
func (s Settings) networkBody(b *strings.Builder) {
	mode := s.ipv6Mode()
	dhcp4 := s.DHCP && !s.NoIPv4
	dhcp6 := mode == IPv6DHCPv6
	switch {
	case dhcp4 && dhcp6:
		b.WriteString("DHCP=yes\n")
	case dhcp4:
		b.WriteString("DHCP=ipv4\n")
	case dhcp6:
		b.WriteString("DHCP=ipv6\n")
	}
	if s.StaticIPv4() {
		fmt.Fprintf(b, "Address=%s\nGateway=%s\n", strings.TrimSpace(s.Address), strings.TrimSpace(s.Gateway))
	}
	if mode == IPv6Static {
		fmt.Fprintf(b, "Address=%s\nGateway=%s\n", strings.TrimSpace(s.Address6), strings.TrimSpace(s.Gateway6))
	}
	for _, d := range SplitList(s.DNS) {
		fmt.Fprintf(b, "DNS=%s\n", d)
	}
	for _, n := range SplitList(s.NTP) {
		fmt.Fprintf(b, "NTP=%s\n", n)
	}
	switch mode {
	case IPv6Off:
		b.WriteString("LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
	case IPv6Static:
		// The link-local address is how neighbours and an fe80:: gateway
		// are reached; router advertisements are not taken.
		b.WriteString("LinkLocalAddressing=ipv6\nIPv6AcceptRA=no\n")
	default:
		b.WriteString("LinkLocalAddressing=ipv6\nIPv6AcceptRA=yes\n")
	}
	if dhcp4 {
		b.WriteString("\n[DHCPv4]\n")
		if len(SplitList(s.DNS)) > 0 {
			b.WriteString("UseDNS=no\n")
		}
		if len(SplitList(s.NTP)) > 0 {
			b.WriteString("UseNTP=no\n")
		}
		b.WriteString("UseHostname=no\n")
	}
	if mode == IPv6SLAAC || mode == IPv6DHCPv6 {
		b.WriteString("\n[IPv6AcceptRA]\n")
		if dhcp6 {
			b.WriteString("DHCPv6Client=always\n")
		}
		if len(SplitList(s.DNS)) > 0 {
			b.WriteString("UseDNS=no\n")
		}
	}
	if dhcp6 {
		b.WriteString("\n[DHCPv6]\n")
		if len(SplitList(s.DNS)) > 0 {
			b.WriteString("UseDNS=no\n")
		}
		if len(SplitList(s.NTP)) > 0 {
			b.WriteString("UseNTP=no\n")
		}
	}
}

// VLANNetdevText renders the .netdev that creates the VLAN interface ("" without a VLAN).
func (s Settings) VLANNetdevText() string {
	v := strings.TrimSpace(s.VLAN)
	if v == "" {
		return ""
	}
	return fmt.Sprintf("# Written by vaultpam-console: the 802.1Q VLAN on %s.\n[NetDev]\nName=%s\nKind=vlan\n\n[VLAN]\nId=%s\n", s.Interface, s.LinkName(), v)
}

// VLANUnitText renders the .network of the VLAN interface, which carries
// the addresses ("" without a VLAN).
func (s Settings) VLANUnitText() string {
	if strings.TrimSpace(s.VLAN) == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString("# Written by vaultpam-console; edit it from the console (N on the health screen).\n")
	fmt.Fprintf(&b, "[Match]\nName=%s\nType=vlan\n\n[Network]\n", s.LinkName())
	s.networkBody(&b)
	return b.String()
}

// parseNetworkUnits reads back what NetworkUnitText and VLANUnitText
// wrote: parent is the parent link's unit, vlan the VLAN's (nil if none),
// netdev the VLAN's .netdev.
func parseNetworkUnits(s *Settings, parent, vlan, netdev []byte) {
	addrUnit, tagged := parent, false
	for _, line := range strings.Split(string(parent), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		switch {
		case ok && k == "Name":
			s.Interface = v
		case ok && k == "VLAN" && vlan != nil:
			addrUnit, tagged = vlan, true
		}
	}
	if tagged {
		for _, line := range strings.Split(string(netdev), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k == "Id" {
				s.VLAN = v
			}
		}
	}
	s.DHCP, s.NoIPv4, s.IPv6 = false, true, ""
	var dns, ntp []string
	var gws []string
	for _, line := range strings.Split(string(addrUnit), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "DHCP":
			if v == "ipv4" || v == "yes" {
				s.DHCP, s.NoIPv4 = true, false
			}
			if v == "ipv6" || v == "yes" {
				s.IPv6 = IPv6DHCPv6
			}
		case "Address":
			if p, err := netip.ParsePrefix(v); err == nil && p.Addr().Is6() {
				s.Address6, s.IPv6 = v, IPv6Static
			} else {
				s.Address, s.NoIPv4 = v, false
			}
		case "Gateway":
			gws = append(gws, v)
		case "DNS":
			dns = append(dns, v)
		case "NTP":
			ntp = append(ntp, v)
		case "IPv6AcceptRA":
			if v == "yes" && s.IPv6 == "" {
				s.IPv6 = IPv6SLAAC
			}
		}
	}
	for _, g := range gws {
		if a, err := netip.ParseAddr(g); err == nil && a.Is6() {
			s.Gateway6 = g
		} else {
			s.Gateway = g
		}
	}
	s.DNS = strings.Join(dns, ", ")
	s.NTP = strings.Join(ntp, ", ")
}
