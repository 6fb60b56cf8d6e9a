package tunnel

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

// Allowlist is the parsed allowed_targets. The zero value (and an empty
// list) allows every target. Entries:
//
//	10.20.0.0/16          any port on any address in the prefix
//	10.0.0.5  or  ::1     any port on that address
//	10.0.0.5:22           that address and port only
//	[2001:db8::5]:22      the same for IPv6
//	db.internal:5432      that host name (as the control plane sends it) and port
//
// A target given by name is allowed when the name:port entry matches — then
// every address the name resolves to is dialled (the name is trusted) — or
// else only its resolved addresses that an address entry allows are
// dialled; the name is resolved once and the checked addresses are the
// ones dialled, so a DNS answer cannot change between check and dial.
type Allowlist struct {
	prefixes []netip.Prefix
	addrs    map[netip.AddrPort]bool
	names    map[string]bool // "name:port", lower case, no trailing dot
	all      bool
}

// ParseAllowlist parses allowed_targets, reporting every bad entry.
func ParseAllowlist(entries []string) (*Allowlist, error) {
	a := &Allowlist{addrs: map[netip.AddrPort]bool{}, names: map[string]bool{}, all: len(entries) == 0}
	var errs []error
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(e); err == nil {
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		host, port, err := splitTarget(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowed_targets entry %q: want a CIDR, an IP or host:port", e))
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			a.addrs[netip.AddrPortFrom(ip.Unmap(), port)] = true
			continue
		}
		a.names[nameKey(host, port)] = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return a, nil
}

// splitTarget splits host:port and checks both parts.
func splitTarget(target string) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(target)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("port %q: want 1-65535", ps)
	}
	if host == "" {
		return "", 0, errors.New("empty host")
	}
	if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
		return "", 0, fmt.Errorf("host %q is not an IP address or a host name", host)
	}
	return host, uint16(port), nil
}

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func nameKey(host string, port uint16) string {
	return strings.ToLower(strings.TrimSuffix(host, ".")) + ":" + strconv.Itoa(int(port))
}

func (a *Allowlist) allowsAddr(ap netip.AddrPort) bool {
	if a.all || a.addrs[ap] {
		return true
	}
	for _, p := range a.prefixes {
		if p.Contains(ap.Addr()) {
			return true
		}
	}
	return false
}

// Resolve checks target (host:port) and returns the addresses to dial, in
// order. A refusal is a *protocol.SessionError with code not_allowed,
// bad_request or resolve_failed.
func (a *Allowlist) Resolve(ctx context.Context, r Resolver, target string) ([]netip.AddrPort, error) {
	host, port, err := splitTarget(target)
	if err != nil {
		return nil, &protocol.SessionError{Code: protocol.ReasonBadRequest, Message: fmt.Sprintf("target %q: %v", target, err)}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ap := netip.AddrPortFrom(ip.Unmap(), port)
		if !a.allowsAddr(ap) {
			return nil, &protocol.SessionError{Code: protocol.ReasonNotAllowed,
				Message: fmt.Sprintf("target %s is not in this connector's allowed_targets", ap)}
		}
		return []netip.AddrPort{ap}, nil
	}
	byName := a.all || a.names[nameKey(host, port)]
	if !byName && len(a.prefixes) == 0 && len(a.addrs) == 0 {
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
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap(), port)
		if byName || a.allowsAddr(ap) {
			out = append(out, ap)
		}
	}
	if len(out) == 0 {
		return nil, &protocol.SessionError{Code: protocol.ReasonNotAllowed,
			Message: fmt.Sprintf("target %s resolves to %v, none of them in this connector's allowed_targets", target, ips)}
	}
	return out, nil
}
