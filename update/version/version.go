// Package version parses and orders appliance image versions.
//
// An image version is three decimal numbers, MAJOR.MINOR.PATCH (no
// pre-release or build suffix): systemd-boot orders boot entries by the
// version in their os-release with its own comparison, which ranks
// "0.2.0-rc1" above "0.2.0", so the updater and the boot loader would
// disagree about which image is newer. Plain x.y.z compare the same way in
// both.
package version

import (
	"fmt"
	"strconv"
	"strings"
)

// V is a parsed version.
type V struct{ Major, Minor, Patch uint32 }

// Parse parses "x.y.z".
func Parse(s string) (V, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return V{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH, three decimal numbers", s)
	}
	var n [3]uint32
	for i, p := range parts {
		if p == "" || len(p) > 9 || (len(p) > 1 && p[0] == '0') {
			return V{}, fmt.Errorf("version %q: %q is not a decimal number without leading zeros", s, p)
		}
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return V{}, fmt.Errorf("version %q: %q is not a decimal number", s, p)
		}
		n[i] = uint32(v)
	}
	return V{n[0], n[1], n[2]}, nil
}

// MustParse is Parse for constants; it panics on a bad version.
func MustParse(s string) V {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

func (v V) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare returns -1, 0 or +1 as v is older than, the same as, or newer
// than w.
func (v V) Compare(w V) int {
	for _, d := range [][2]uint32{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		switch {
		case d[0] < d[1]:
			return -1
		case d[0] > d[1]:
			return 1
		}
	}
	return 0
}

// Newer reports whether v is newer than w.
func (v V) Newer(w V) bool { return v.Compare(w) > 0 }
