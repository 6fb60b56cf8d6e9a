package version

import "testing"

func TestParseAndCompare(t *testing.T) {
	for _, bad := range []string{"", "1", "1.2", "1.2.3.4", "1.2.x", "01.2.3", "1.2.3-rc1", "1.2.3+b", "-1.2.3", "1..3", "9999999999.0.0"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = nil error, want one", bad)
		}
	}
	order := []string{"0.0.1", "0.1.0", "0.1.9", "0.1.10", "0.2.0", "1.0.0", "10.0.0"}
	for i := range order {
		for j := range order {
			a, b := MustParse(order[i]), MustParse(order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%s.Compare(%s) = %d, want %d", a, b, got, want)
			}
		}
	}
	if MustParse("0.10.0").String() != "0.10.0" {
		t.Error("String does not round-trip")
	}
}
