package allowlist_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/allowlist"
	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/tunnel"
)

// appliance is the machine the fuzzed sessions run on: one address in
// 192.0.2.0/24, loopback and a link-local IPv6 address.
func appliance() ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("fe80::5054:ff:fe12:3456/64")}, nil
}

// osResolver answers as the machine's resolver would for the address
// spellings people fear (inet_aton reads 2130706433, 0177.0.0.1, 0x7f.1 and
// 127.1 as 127.0.0.1; /etc/hosts has localhost), and with the fuzzed
// answers for every other name.
type osResolver struct{ answers []netip.Addr }

func (r osResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := inetAton(host); ok {
		return []netip.Addr{a}, nil
	}
	switch strings.ToLower(strings.TrimSuffix(host, ".")) {
	case "localhost":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
	}
	if len(r.answers) == 0 {
		return nil, errors.New("no such host")
	}
	return r.answers, nil
}

// inetAton parses an IPv4 address the way the C library's inet_aton does:
// one to four parts, each decimal, octal (leading 0) or hex (0x), the last
// filling the remaining bytes.
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			p, base = p[2:], 16
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		if p == "" && base != 16 {
			return netip.Addr{}, false
		}
		v := uint64(0)
		if p != "" {
			var err error
			if v, err = strconv.ParseUint(p, base, 32); err != nil {
				return netip.Addr{}, false
			}
		}
		vals = append(vals, v)
	}
	var ip uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		ip |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(32-8*(len(vals)-1)) {
		return netip.Addr{}, false
	}
	ip |= last
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

// answers turns fuzz bytes into resolver answers: 4 or 16 bytes each,
// after a length byte.
func answers(b []byte) []netip.Addr {
	var out []netip.Addr
	for len(b) > 0 {
		n := 4
		if b[0]&1 == 1 {
			n = 16
		}
		if len(b) < 1+n {
			break
		}
		a, _ := netip.AddrFromSlice(b[1 : 1+n])
		out = append(out, a)
		b = b[1+n:]
	}
	return out
}

// FuzzAllowlist checks allowed_targets against the tunnel that enforces
// it, over fuzzed entries, targets and DNS answers:
//
//   - the configuration check and the tunnel accept the same lists (one
//     parser; a list the check passes never stops the tunnel);
//   - an entry accepted at load is usable: the target it names is never
//     refused by the tunnel as malformed, and is allowed unless it lies in
//     the default deny set without the entry naming it on purpose;
//   - no spelling of a target (IPv4-mapped IPv6, zero-padded, decimal,
//     octal, short forms, trailing dots, 0, 0.0.0.0, [::], zones) reaches
//     an address of the default deny set, unless an IP or CIDR entry lying
//     inside the deny set names that address; the addresses handed to the
//     dialler are exactly what was checked, written so no dialler reads
//     them otherwise.
func FuzzAllowlist(f *testing.F) {
	f.Fuzz(func(t *testing.T, list, target string, dns []byte) {
		var entries []string
		if list != "" {
			entries = strings.Split(list, "\n")
		}
		l, perr := allowlist.Parse(entries)

		// One parser: the configuration check and the tunnel agree.
		cc := config.Config{ControlPlaneURL: "https://cp.example.com", ConnectorName: "dc1", AllowedTargets: entries}
		cerr := cc.Validate()
		if (perr != nil) != (cerr != nil && strings.Contains(cerr.Error(), "allowed_targets")) {
			t.Fatalf("entries %q: allowlist.Parse = %v, config check = %v", entries, perr, cerr)
		}
		tc := tunnel.DefaultConfig()
		tc.Address = "cp.example.com:443"
		tc.Certificate = func() (*tls.Certificate, error) { return nil, errors.New("none") }
		tc.AllowedTargets = entries
		if _, err := tunnel.New(tc); (err != nil) != (perr != nil) {
			t.Fatalf("entries %q: allowlist.Parse = %v, tunnel.New = %v", entries, perr, err)
		}
		if perr != nil {
			return
		}
		deny, _ := allowlist.DenySet(appliance)
		res := osResolver{answers(dns)}

		// Every accepted entry names targets the tunnel takes.
		for _, e := range entries {
			e = strings.TrimSpace(e)
			tgt, addr := entryTarget(e)
			got, err := l.Resolve(context.Background(), res, appliance, tgt)
			var se *protocol.SessionError
			if errors.As(err, &se) && se.Code == protocol.ReasonBadRequest {
				t.Fatalf("entry %q accepted at load, but the tunnel refuses its target %q as malformed: %v", e, tgt, err)
			}
			switch {
			case !addr.IsValid(): // a name: the resolver decides
			case !denied(deny, addr) || names(entries, deny, netip.AddrPortFrom(addr, port(tgt))):
				if err != nil || len(got) != 1 || got[0].Addr() != addr {
					t.Fatalf("entry %q: its target %q = %v, %v; want it allowed", e, tgt, got, err)
				}
			default:
				if err == nil {
					t.Fatalf("entry %q: target %q in the deny set = %v, allowed without an entry naming it", e, tgt, got)
				}
			}
		}

		// No spelling of the fuzzed target gets past the deny set.
		if target == "" {
			return
		}
		got, err := l.Resolve(context.Background(), res, appliance, target)
		if err != nil {
			var se *protocol.SessionError
			if !errors.As(err, &se) || len(se.Message) > 2048 {
				t.Fatalf("Resolve(%q) = %v: not a session refusal that fits in a frame", target, err)
			}
			return
		}
		if len(got) == 0 {
			t.Fatalf("Resolve(%q) = no address, no error", target)
		}
		for _, ap := range got {
			if back, err := netip.ParseAddrPort(ap.String()); err != nil || back != ap || ap.Addr().Is4In6() || ap.Addr().Zone() != "" {
				t.Fatalf("Resolve(%q) dials %q, which does not read back as itself", target, ap)
			}
			if denied(deny, ap.Addr()) && !names(entries, deny, ap) {
				t.Fatalf("Resolve(%q) with allowed_targets %q dials %s, in the default deny set", target, entries, ap)
			}
		}
	})
}

// entryTarget is a target an entry names: itself when it has a port, its
// (first) address on port 22 otherwise; addr is the IP, if it is one.
func entryTarget(e string) (string, netip.Addr) {
	if p, err := netip.ParsePrefix(e); err == nil {
		a := p.Masked().Addr().Unmap()
		return netip.AddrPortFrom(a, 22).String(), a
	}
	if a, err := netip.ParseAddr(e); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 22).String(), a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(e); err == nil {
		return e, ap.Addr().Unmap()
	}
	return e, netip.Addr{}
}

func port(target string) uint16 {
	i := strings.LastIndexByte(target, ':')
	p, _ := strconv.ParseUint(target[i+1:], 10, 16)
	return uint16(p)
}

func denied(deny []allowlist.DeniedRange, a netip.Addr) bool {
	for _, d := range deny {
		if d.Range.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// names reports whether an IP or CIDR entry lying wholly inside the deny
// set names ap: the one way a denied address is allowed.
func names(entries []string, deny []allowlist.DeniedRange, ap netip.AddrPort) bool {
	inside := func(p netip.Prefix) bool {
		for _, d := range deny {
			if d.Range.Bits() <= p.Bits() && d.Range.Contains(p.Addr()) {
				return true
			}
		}
		return false
	}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		var p netip.Prefix
		if q, err := netip.ParsePrefix(e); err == nil {
			p = q
			if a := q.Addr(); a.Is4In6() && q.Bits() >= 96 {
				p = netip.PrefixFrom(a.Unmap(), q.Bits()-96)
			}
			p = p.Masked()
		} else if a, err := netip.ParseAddr(e); err == nil {
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		} else if x, err := netip.ParseAddrPort(e); err == nil && x.Port() == ap.Port() {
			p = netip.PrefixFrom(x.Addr().Unmap(), x.Addr().Unmap().BitLen())
		} else {
			continue
		}
		if p.Contains(ap.Addr()) && inside(p) {
			return true
		}
	}
	return false
}
