package allowlist

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// The default deny set: addresses a session is refused even with no
// allowed_targets, because a session there reaches the appliance itself,
// its host's or cloud's metadata service, or nothing useful (multicast,
// broadcast). IPv4-mapped IPv6 forms (::ffff:127.0.0.1) are compared as
// IPv4. The appliance's own addresses (every local interface address, and
// the broadcast address of each local IPv4 subnet) are added at each check
// from LocalAddrs.
//
// The local API is a Unix socket: a session target is always TCP
// host:port, so it cannot reach it (a path is refused as bad_request).
var defaultDeny = []DeniedRange{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this host\" (0.0.0.0/8, which reaches the appliance itself)"},
	{netip.MustParsePrefix("::/128"), "unspecified (::, which reaches the appliance itself)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (incl. the metadata service 169.254.169.254)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
}

// What the appliance's own addresses are called in refusals and status.
const (
	ownAddress   = "this appliance's own address"
	ownBroadcast = "broadcast of this appliance's subnet"
)

// DeniedRange is one range of the default deny set, with what it is.
type DeniedRange struct {
	Range netip.Prefix
	What  string
}

// LocalAddrs returns this machine's interface addresses, each with its
// prefix length (10.0.2.15/24). It is read at every check, so addresses
// that come and go (DHCP) are always current.
type LocalAddrs func() ([]netip.Prefix, error)

// InterfaceAddrs is the real LocalAddrs: every address of every interface.
func InterfaceAddrs() ([]netip.Prefix, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("reading the appliance's interface addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range as {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ones, _ := ipn.Mask.Size()
		ip = ip.Unmap()
		if ip.Is4() && ones > 32 {
			ones -= 96
		}
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out, nil
}

// DenySet returns the default deny set as it applies now: the fixed
// ranges, then the appliance's own addresses and subnet broadcasts from
// locals (nil means InterfaceAddrs).
func DenySet(locals LocalAddrs) ([]DeniedRange, error) {
	if locals == nil {
		locals = InterfaceAddrs
	}
	out := append([]DeniedRange(nil), defaultDeny...)
	ps, err := locals()
	if err != nil {
		return out, err
	}
	for _, p := range ps {
		a := p.Addr().Unmap()
		out = append(out, DeniedRange{netip.PrefixFrom(a, a.BitLen()), ownAddress})
		if a.Is4() && p.Bits() > 0 && p.Bits() <= 30 {
			out = append(out, DeniedRange{netip.PrefixFrom(broadcast(netip.PrefixFrom(a, p.Bits())), 32), ownBroadcast})
		}
	}
	return out, nil
}

// broadcast is the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	for i := 3; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	return netip.AddrFrom4(b)
}

// deniedBy returns the ranges of deny containing a (empty: not denied).
func deniedBy(deny []DeniedRange, a netip.Addr) []DeniedRange {
	var out []DeniedRange
	for _, d := range deny {
		if d.Range.Contains(a) {
			out = append(out, d)
		}
	}
	return out
}

// within reports whether every address of p is in the deny set: p lies
// inside one of its ranges. Such an entry in allowed_targets names denied
// addresses on purpose and allows them; a broader one (10.0.0.0/8,
// 0.0.0.0/0) never does.
func within(deny []DeniedRange, p netip.Prefix) bool {
	for _, d := range deny {
		if d.Range.Bits() <= p.Bits() && d.Range.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// allowsDenied reports whether an IP entry of l that names denied
// addresses on purpose (within the deny set) allows ap.
func (l *List) allowsDenied(deny []DeniedRange, ap netip.AddrPort) bool {
	if l.addrs[ap] && within(deny, netip.PrefixFrom(ap.Addr(), ap.Addr().BitLen())) {
		return true
	}
	for _, p := range l.prefixes {
		if p.Contains(ap.Addr()) && within(deny, p) {
			return true
		}
	}
	return false
}

func whatOf(ds []DeniedRange) string {
	var ws []string
	for _, d := range ds {
		if !containsString(ws, d.What) {
			ws = append(ws, d.What)
		}
	}
	return strings.Join(ws, ", ")
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Description is the effective target policy, for the status JSON and the
// health screen.
type Description struct {
	// Entries is the configured allowed_targets; empty means every address
	// not in Denied.
	Entries []string
	// Denied is the default deny set as it applies now.
	Denied []DeniedRange
	// Summary says it in one line.
	Summary string
}

// Describe describes the policy of entries with the current local
// addresses (locals nil means InterfaceAddrs). An error reading them is
// reported in the summary: sessions are refused meanwhile.
func Describe(entries []string, locals LocalAddrs) Description {
	deny, err := DenySet(locals)
	d := Description{Entries: append([]string{}, entries...), Denied: deny}
	kinds := "loopback, link-local (incl. 169.254.169.254), multicast, broadcast and this appliance's own addresses"
	if len(entries) == 0 {
		d.Summary = "any private or public address; refused: " + kinds
	} else {
		d.Summary = fmt.Sprintf("only allowed_targets (%d entries); %s are refused unless an IP entry names them", len(entries), kinds)
	}
	if err != nil {
		d.Summary += fmt.Sprintf("; cannot read this appliance's addresses (%v): every session is refused until it can", err)
	}
	return d
}
