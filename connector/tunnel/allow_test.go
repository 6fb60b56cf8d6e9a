package tunnel

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vaultpam/appliance/connector/protocol"
)

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[strings.ToLower(strings.TrimSuffix(host, "."))]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func splitLines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

func TestAllowlist(t *testing.T) {
	a, err := ParseAllowlist([]string{"10.20.0.0/16", "192.0.2.7", "db.internal:5432", "198.51.100.9:22", "[2001:db8::5]:22"})
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
		got, err := a.Resolve(context.Background(), res, tc.target)
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
	a, err := ParseAllowlist(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Resolve(context.Background(), fakeResolver{"h": {netip.MustParseAddr("203.0.113.1")}}, "h:22")
	if err != nil || len(got) != 1 {
		t.Fatalf("Resolve with no allow-list = %v, %v; want allowed", got, err)
	}
}

func TestAllowlistBadEntries(t *testing.T) {
	_, err := ParseAllowlist([]string{"10.0.0.0/33", "host:notaport", "ok.internal:22", "[::1]:99999"})
	if err == nil {
		t.Fatal("ParseAllowlist accepted bad entries")
	}
	if got := len(splitLines(err.Error())); got != 3 {
		t.Errorf("ParseAllowlist reported %d problems, want 3: %v", got, err)
	}
}
