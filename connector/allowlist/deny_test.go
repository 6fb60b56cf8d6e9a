package allowlist

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/protocol"
)

// appliance has one address, 192.0.2.10/24, plus loopback and a
// link-local IPv6 address, as read from its interfaces.
func appliance() ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("fe80::5054:ff:fe12:3456/64")}, nil
}

// check runs Resolve and returns the refusal code ("" when allowed).
func check(t *testing.T, l *List, res Resolver, target string) (protocol.Reason, string) {
	t.Helper()
	_, err := l.Resolve(context.Background(), res, appliance, target)
	if err == nil {
		return "", ""
	}
	var se *protocol.SessionError
	if !errors.As(err, &se) {
		t.Fatalf("Resolve(%q) = %v, not a *protocol.SessionError", target, err)
	}
	return se.Code, se.Message
}

// With no allowed_targets, sessions to the appliance itself, to
// link-local (the metadata service), multicast and broadcast are refused;
// private and public addresses stay allowed.
func TestDefaultDenySet(t *testing.T) {
	l, _ := Parse(nil)
	res := fakeResolver{
		"localhost":      {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"metadata.cloud": {netip.MustParseAddr("169.254.169.254")},
		"rebind.example": {netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("127.0.0.1")},
		"db.internal":    {netip.MustParseAddr("10.1.2.3")},
	}
	for target, what := range map[string]string{
		"127.0.0.1:22":                "loopback",
		"127.9.9.9:22":                "loopback",
		"[::1]:22":                    "loopback",
		"[::ffff:127.0.0.1]:22":       "loopback",
		"0.0.0.0:22":                  "this host",
		"0.1.2.3:22":                  "this host",
		"[::]:22":                     "unspecified",
		"169.254.169.254:80":          "metadata service",
		"[::ffff:169.254.169.254]:80": "metadata service",
		"[fe80::1]:22":                "link-local",
		"224.0.0.1:5353":              "multicast",
		"[ff02::1]:22":                "multicast",
		"255.255.255.255:22":          "broadcast",
		"192.0.2.10:22":               "this appliance's own address",
		"192.0.2.255:22":              "broadcast of this appliance's subnet",
		"localhost:22":                "loopback",
		"metadata.cloud:80":           "metadata service",
	} {
		code, msg := check(t, l, res, target)
		if code != protocol.ReasonNotAllowed || !strings.Contains(msg, what) {
			t.Errorf("Resolve(%s) = %s %q; want not_allowed naming %q", target, code, msg, what)
		}
	}
	for _, target := range []string{"10.1.2.3:22", "192.168.1.1:3389", "172.16.0.1:5432", "192.0.2.11:22", "203.0.113.7:443", "[2001:db8::1]:22", "db.internal:5432"} {
		if code, msg := check(t, l, res, target); code != "" {
			t.Errorf("Resolve(%s) = %s %q; want allowed (private and public addresses are allowed by default)", target, code, msg)
		}
	}
	// A name that resolves to an allowed and a denied address: only the
	// allowed one is dialled.
	got, err := l.Resolve(context.Background(), res, appliance, "rebind.example:80")
	if err != nil || len(got) != 1 || got[0].String() != "203.0.113.5:80" {
		t.Errorf("Resolve(rebind.example:80) = %v, %v; want only 203.0.113.5:80", got, err)
	}
}

// An IP or CIDR entry that lies wholly inside the deny set allows what it
// names (an operator may need 169.254.x or a local database on purpose);
// a broader entry or a host name never does.
func TestExplicitEntriesOverrideTheDenySet(t *testing.T) {
	res := fakeResolver{"localhost": {netip.MustParseAddr("127.0.0.1")}}
	for _, tc := range []struct {
		entries []string
		target  string
		allowed bool
	}{
		{[]string{"127.0.0.1:5432"}, "127.0.0.1:5432", true},
		{[]string{"127.0.0.1:5432"}, "127.0.0.1:22", false},
		{[]string{"127.0.0.0/8"}, "127.0.0.1:22", true},
		{[]string{"169.254.169.254"}, "169.254.169.254:80", true},
		{[]string{"169.254.0.0/16"}, "169.254.1.1:80", true},
		{[]string{"192.0.2.10:22"}, "192.0.2.10:22", true}, // the appliance's own address, named
		{[]string{"192.0.2.0/24"}, "192.0.2.10:22", false}, // a subnet is not naming the appliance
		{[]string{"192.0.2.0/24"}, "192.0.2.11:22", true},
		{[]string{"0.0.0.0/0"}, "127.0.0.1:22", false},
		{[]string{"0.0.0.0/0"}, "169.254.169.254:80", false},
		{[]string{"::/0"}, "[::1]:22", false},
		{[]string{"::ffff:0:0/96"}, "127.0.0.1:22", false},
		{[]string{"localhost:22"}, "localhost:22", false}, // a name never allows a denied address
		{[]string{"localhost:22"}, "127.0.0.1:22", false},
	} {
		l, err := Parse(tc.entries)
		if err != nil {
			t.Fatal(err)
		}
		code, msg := check(t, l, res, tc.target)
		if (code == "") != tc.allowed {
			t.Errorf("allowed_targets %v, target %s: refusal %q %q, want allowed=%v", tc.entries, tc.target, code, msg, tc.allowed)
		}
	}
}

// The local API is a Unix socket: a target is TCP host:port, so a path
// never reaches it.
func TestLocalAPIIsNotATarget(t *testing.T) {
	l, _ := Parse(nil)
	for _, target := range []string{"/run/vaultpam/connector.sock", "unix:///run/vaultpam/connector.sock", "unix:/run/vaultpam/connector.sock:0"} {
		if code, _ := check(t, l, nil, target); code != protocol.ReasonBadRequest {
			t.Errorf("Resolve(%q) = %q, want bad_request", target, code)
		}
	}
}

// Not knowing the appliance's own addresses refuses every session rather
// than risk one to the appliance itself.
func TestUnreadableLocalAddressesRefuse(t *testing.T) {
	l, _ := Parse(nil)
	_, err := l.Resolve(context.Background(), nil, func() ([]netip.Prefix, error) { return nil, errors.New("netlink: boom") }, "203.0.113.1:22")
	var se *protocol.SessionError
	if !errors.As(err, &se) || se.Code != protocol.ReasonNotAllowed || !strings.Contains(se.Message, "boom") {
		t.Errorf("Resolve with unreadable local addresses = %v, want not_allowed saying why", err)
	}
}

// The real interface addresses of this machine are in the deny set.
func TestInterfaceAddrsAreDenied(t *testing.T) {
	ps, err := InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	deny, _ := DenySet(InterfaceAddrs)
	for _, p := range ps {
		if len(deniedBy(deny, p.Addr())) == 0 {
			t.Errorf("interface address %s is not in the deny set", p)
		}
	}
}

func TestDescribe(t *testing.T) {
	d := Describe(nil, appliance)
	if !strings.Contains(d.Summary, "any private or public address") || len(d.Denied) < len(defaultDeny)+4 {
		t.Errorf("Describe(nil) = %+v", d)
	}
	d = Describe([]string{"10.0.0.0/8"}, appliance)
	if !strings.Contains(d.Summary, "only allowed_targets (1 entries)") || len(d.Entries) != 1 {
		t.Errorf("Describe(list) = %+v", d)
	}
}
