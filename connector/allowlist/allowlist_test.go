package allowlist

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vaultpam/appliance/connector/protocol"
)

// noLocals is a machine without addresses of its own.
func noLocals() ([]netip.Prefix, error) { return nil, nil }

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[strings.ToLower(strings.TrimSuffix(host, "."))]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestAllowlist(t *testing.T) {
	a, err := Parse([]string{"10.20.0.0/16", "192.0.2.7", "db.internal:5432", "198.51.100.9:22", "[2001:db8::5]:22"})
	if err != nil {
		t.Fatal(err)
	}
	res := fakeResolver{
		"db.internal":  {netip.MustParseAddr("203.0.113.50")},                                  // allowed by name only
		"app.internal": {netip.MustParseAddr("10.20.3.4"), netip.MustParseAddr("203.0.113.9")}, // one address allowed
		"evil.example": {netip.MustParseAddr("203.0.113.66")},
		"mapped":       {netip.MustParseAddr("::ffff:10.20.0.1")},
	}
	for _, tc := range []struct {
		target string
		want   []string
		code   protocol.Reason
	}{
		{"10.20.1.2:3389", []string{"10.20.1.2:3389"}, ""},
		{"10.21.1.2:3389", nil, protocol.ReasonNotAllowed},
		{"192.0.2.7:1", []string{"192.0.2.7:1"}, ""},
		{"198.51.100.9:22", []string{"198.51.100.9:22"}, ""},
		{"198.51.100.9:23", nil, protocol.ReasonNotAllowed},
		{"[2001:db8::5]:22", []string{"[2001:db8::5]:22"}, ""},
		{"db.internal:5432", []string{"203.0.113.50:5432"}, ""},
		{"DB.Internal.:5432", []string{"203.0.113.50:5432"}, ""},
		{"db.internal:5433", nil, protocol.ReasonNotAllowed}, // name allowed on 5432 only; its IP is not in a CIDR
		{"app.internal:80", []string{"10.20.3.4:80"}, ""},    // only the allowed address is dialled
		{"evil.example:80", nil, protocol.ReasonNotAllowed},
		{"mapped:80", []string{"10.20.0.1:80"}, ""},
		{"nowhere.internal:80", nil, protocol.ReasonResolveFailed},
		{"10.20.1.2", nil, protocol.ReasonBadRequest},
		{"10.20.1.2:0", nil, protocol.ReasonBadRequest},
		{"bad host:80", nil, protocol.ReasonBadRequest},
	} {
		got, err := a.Resolve(context.Background(), res, noLocals, tc.target)
		var se *protocol.SessionError
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("Resolve(%q) = %v, want allowed", tc.target, err)
		case tc.code != "" && (!errors.As(err, &se) || se.Code != tc.code):
			t.Errorf("Resolve(%q) = %v, %v; want refusal %s", tc.target, got, err, tc.code)
		case tc.code == "":
			var s []string
			for _, ap := range got {
				s = append(s, ap.String())
			}
			if diff := cmp.Diff(tc.want, s); diff != "" {
				t.Errorf("Resolve(%q) addresses (-want +got):\n%s", tc.target, diff)
			}
		}
	}
}

func TestAllowlistEmptyAllowsAll(t *testing.T) {
	a, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Resolve(context.Background(), fakeResolver{"h": {netip.MustParseAddr("203.0.113.1")}}, noLocals, "h:22")
	if err != nil || len(got) != 1 {
		t.Fatalf("Resolve with no allow-list = %v, %v; want allowed", got, err)
	}
}

// Every entry is either accepted and enforced, or refused with a message
// that says what is wrong (without repeating the entry).
func TestAllowlistBadEntries(t *testing.T) {
	cases := []struct {
		entry string
		want  error
	}{
		{"10.0.0.0/33", ErrBadCIDR},
		{"host:notaport", ErrBadPort},
		{"db.internal:ssh", ErrBadPort},
		{"[::1]:99999", ErrBadPort},
		{"db.internal:0", ErrBadPort},
		{"db.internal", ErrNameNoPort},
		{"*.internal:22", ErrWildcard},
		{"*", ErrWildcard},
		{"0", ErrNotTarget},
		{"10.0.0", ErrNotTarget},
		{"10.0.0:22", ErrNotTarget},
		{"bad host:80", ErrNotTarget},
		{"-db.internal:22", ErrNotTarget},
		{"fe80::1%eth0", ErrZone},
		{"[fe80::1%eth0]:22", ErrZone},
		{"", ErrEmpty},
		{"  ", ErrEmpty},
	}
	var entries []string
	for _, tc := range cases {
		entries = append(entries, tc.entry)
	}
	_, err := Parse(append([]string{"ok.internal:22"}, entries...))
	if err == nil {
		t.Fatal("Parse accepted bad entries")
	}
	var got []*EntryError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ee *EntryError
		if !errors.As(e, &ee) {
			t.Fatalf("problem %v is not an *EntryError", e)
		}
		got = append(got, ee)
	}
	if len(got) != len(cases) {
		t.Fatalf("Parse reported %d problems, want %d: %v", len(got), len(cases), err)
	}
	for i, tc := range cases {
		if got[i].Index != i+1 || !errors.Is(got[i], tc.want) {
			t.Errorf("entry %q: %v (index %d), want %v at %d", tc.entry, got[i], got[i].Index, tc.want, i+1)
		}
		if strings.TrimSpace(tc.entry) != "" && strings.Contains(got[i].Error(), tc.entry) {
			t.Errorf("the problem with %q repeats the entry: %v", tc.entry, got[i])
		}
	}
	for _, ok := range []string{"10.20.0.0/16", "::ffff:10.0.0.0/104", "2001:db8::/32", "10.0.0.5", "::1", "10.0.0.5:22", "[2001:db8::5]:22",
		"db.internal:5432", "DB.Internal.:5432", "srv_1.corp:3389", "a-1.b-2.example:1"} {
		if _, err := Parse([]string{ok}); err != nil {
			t.Errorf("Parse(%q) = %v, want accepted", ok, err)
		}
	}
}
