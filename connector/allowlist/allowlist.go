// Package allowlist is the connector's allowed_targets: the one parser of
// its entries, the default deny set (loopback, link-local, multicast,
// broadcast and the appliance's own addresses, refused even with no list)
// and the check of a session's target against both. Package
// config validates the configuration with Parse, so an entry the tunnel
// would refuse is refused at load, before a token is used; package tunnel
// enforces the list with Resolve.
//
// Entries:
//
//	10.20.0.0/16          any port on any address in the prefix
//	10.0.0.5  or  ::1     any port on that address
//	10.0.0.5:22           that address and port only
//	[2001:db8::5]:22      the same for IPv6
//	db.internal:5432      that host name (as the control plane sends it) and port
//
// A host name always comes with a numeric port. Not accepted, each with
// its own message: a host name alone (it would allow every port of
// whatever the name resolves to), wildcards (*.internal:22), named ports
// (db.internal:ssh), IPv6 zones, and anything that is neither an address
// nor a host name (0, 10.0.0).
package allowlist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vaultpam/appliance/connector/protocol"
)

// List is a parsed allowed_targets. The zero value (and an empty list)
// allows every target outside the default deny set (deny.go). A List is
// immutable and safe for concurrent use.
//
// A target given by name is allowed when the name:port entry matches —
// then every address the name resolves to is dialled (the name is
// trusted) — or else only its resolved addresses that an address entry
// allows are dialled; the name is resolved once and the checked addresses
// are the ones dialled, so a DNS answer cannot change between check and
// dial.
type List struct {
	prefixes []netip.Prefix
	addrs    map[netip.AddrPort]bool
	names    map[string]bool // "name:port", lower case, no trailing dot
}

// EntryError is one entry Parse refused. It says what is wrong without
// repeating the entry, which could be anything pasted by mistake (a
// token, a password): Index points at it.
type EntryError struct {
	Index int // 0-based position in the list
	Err   error
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %d: %v", e.Index, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// Parse parses allowed_targets. Every bad entry is reported, each as an
// *EntryError, joined.
func Parse(entries []string) (*List, error) {
	l := &List{addrs: map[netip.AddrPort]bool{}, names: map[string]bool{}}
	var errs []error
	for i, e := range entries {
		if err := l.add(strings.TrimSpace(e)); err != nil {
			errs = append(errs, &EntryError{Index: i, Err: err})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return l, nil
}

// Entry problems, for errors.Is.
var (
	ErrEmpty      = errors.New("is empty")
	ErrBadCIDR    = errors.New("is not a valid CIDR (like 10.20.0.0/16)")
	ErrNameNoPort = errors.New("a host name needs a port (like name.example:5432); a name alone would allow every port")
	ErrWildcard   = errors.New("wildcards are not supported: list each name:port, or use a CIDR")
	ErrBadPort    = errors.New("the port must be a number from 1 to 65535 (named ports like ssh are not looked up)")
	ErrZone       = errors.New("IPv6 zones (%eth0) are not supported")
	ErrNotTarget  = errors.New("is not an IP address, a CIDR, or host:port with a host name or IP")
)

func (l *List) add(e string) error {
	switch {
	case e == "":
		return ErrEmpty
	case strings.Contains(e, "*"):
		return ErrWildcard
	case strings.Contains(e, "%"):
		return ErrZone
	}
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return ErrBadCIDR
		}
		l.prefixes = append(l.prefixes, unmapPrefix(p).Masked())
		return nil
	}
	if ip, err := netip.ParseAddr(e); err == nil {
		l.prefixes = append(l.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		return nil
	}
	host, port, err := splitTarget(e)
	if err != nil {
		switch {
		case errors.Is(err, errNoPort) && validHostname(e):
			return ErrNameNoPort
		case errors.Is(err, errNoPort):
			return ErrNotTarget
		}
		return err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		l.addrs[netip.AddrPortFrom(ip.Unmap(), port)] = true
		return nil
	}
	l.names[nameKey(host, port)] = true
	return nil
}

// unmapPrefix turns ::ffff:10.0.0.0/104 into 10.0.0.0/8: targets are
// compared as IPv4 when they are IPv4-mapped.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

var errNoPort = errors.New("no port")

// splitTarget splits host:port and checks both parts.
func splitTarget(target string) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(target)
	if err != nil {
		return "", 0, errNoPort
	}
	if strings.Contains(host, "%") {
		return "", 0, ErrZone
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return "", 0, ErrBadPort
	}
	if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
		return "", 0, ErrNotTarget
	}
	return host, uint16(port), nil
}

// validHostname accepts DNS names: labels of letters, digits, '-' and '_'
// (not at a label's ends), up to 63 each and 253 in all, and a last label
// that is not all digits (so "0" or "10.0.0" are never taken for names).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

func nameKey(host string, port uint16) string {
	return strings.ToLower(strings.TrimSuffix(host, ".")) + ":" + strconv.Itoa(int(port))
}

// all reports whether the list is empty: every target allowed.
func (l *List) all() bool {
	return l == nil || len(l.prefixes) == 0 && len(l.addrs) == 0 && len(l.names) == 0
}

func (l *List) allowsAddr(ap netip.AddrPort) bool {
	if l.all() || l.addrs[ap] {
		return true
	}
	for _, p := range l.prefixes {
		if p.Contains(ap.Addr()) {
			return true
		}
	}
	return false
}

// Resolver resolves a target host name to IP addresses.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// maxEcho bounds how much of a target a refusal repeats, so the refusal
// always fits in a frame whatever the control plane sent.
const maxEcho = 300

// Quote returns s quoted for a message, cut to a few hundred bytes.
func Quote(s string) string {
	if len(s) > maxEcho {
		return strconv.Quote(s[:maxEcho]) + "…"
	}
	return strconv.Quote(s)
}

// Resolve checks target (host:port) and returns the addresses to dial, in
// order. r nil means net.DefaultResolver; locals (the appliance's own
// addresses, read now) nil means InterfaceAddrs. A refusal is a
// *protocol.SessionError with code not_allowed, bad_request or
// resolve_failed.
//
// An address in the default deny set (DenySet) is refused unless an IP or
// CIDR entry that lies wholly inside the deny set names it (127.0.0.1:5432,
// 169.254.169.254); a host name entry or a broader CIDR never allows it.
// Every other address is allowed when the list is empty, or when an entry
// allows it.
func (l *List) Resolve(ctx context.Context, r Resolver, locals LocalAddrs, target string) ([]netip.AddrPort, error) {
	host, port, err := splitTarget(target)
	if err != nil {
		if errors.Is(err, errNoPort) {
			err = errors.New("want host:port")
		}
		return nil, &protocol.SessionError{Code: protocol.ReasonBadRequest, Message: fmt.Sprintf("target %s: %v", Quote(target), err)}
	}
	deny, err := DenySet(locals)
	if err != nil {
		return nil, &protocol.SessionError{Code: protocol.ReasonNotAllowed,
			Message: fmt.Sprintf("%v; refusing the session rather than risk reaching the appliance itself", err)}
	}
	// check says whether ap may be dialled, and if it is denied by
	// default, what it is.
	check := func(ap netip.AddrPort, byName bool) (bool, string) {
		if ds := deniedBy(deny, ap.Addr()); len(ds) > 0 {
			return l.allowsDenied(deny, ap), whatOf(ds)
		}
		return byName || l.allowsAddr(ap), ""
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ap := netip.AddrPortFrom(ip.Unmap(), port)
		switch ok, what := check(ap, false); {
		case ok:
			return []netip.AddrPort{ap}, nil
		case what != "":
			return nil, &protocol.SessionError{Code: protocol.ReasonNotAllowed,
				Message: fmt.Sprintf("target %s is %s, which this connector refuses by default; an allowed_targets entry naming it (%s) allows it", ap, what, ap)}
		}
		return nil, &protocol.SessionError{Code: protocol.ReasonNotAllowed,
			Message: fmt.Sprintf("target %s is not in this connector's allowed_targets", ap)}
	}
	byName := l.all() || l.names[nameKey(host, port)]
	if !byName && len(l.prefixes) == 0 && len(l.addrs) == 0 {
		return nil, &protocol.SessionError{Code: protocol.ReasonNotAllowed,
			Message: fmt.Sprintf("target %s is not in this connector's allowed_targets", target)}
	}
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return nil, &protocol.SessionError{Code: protocol.ReasonResolveFailed,
			Message: fmt.Sprintf("resolving %s: %v", host, err)}
	}
	var out []netip.AddrPort
	var denied []string
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap(), port)
		ok, what := check(ap, byName)
		switch {
		case ok:
			out = append(out, ap)
		case what != "":
			denied = append(denied, ap.Addr().String()+" ("+what+")")
		}
	}
	switch {
	case len(out) > 0:
		return out, nil
	case len(denied) > 0:
		return nil, &protocol.SessionError{Code: protocol.ReasonNotAllowed,
			Message: fmt.Sprintf("target %s resolves to %s, refused by default; only an IP entry in allowed_targets naming the address allows it, a host name never does", target, strings.Join(denied, ", "))}
	}
	return nil, &protocol.SessionError{Code: protocol.ReasonNotAllowed,
		Message: fmt.Sprintf("target %s resolves to %v, none of them in this connector's allowed_targets", target, ips)}
}
