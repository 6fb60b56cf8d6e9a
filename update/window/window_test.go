package window

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse("Mon 2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestOpenAndNext(t *testing.T) {
	cases := []struct {
		spec, now string
		open      bool
		next      string
	}{
		{"", "Wed 2026-12-02 13:00", true, "Wed 2026-12-02 13:00"},
		{"02:00-04:00", "Wed 2026-12-02 03:59", true, "Wed 2026-12-02 03:59"},
		{"02:00-04:00", "Wed 2026-12-02 04:00", false, "Thu 2026-12-03 02:00"},
		{"02:00-04:00", "Wed 2026-12-02 01:00", false, "Wed 2026-12-02 02:00"},
		{"Sat,Sun 02:00-04:00", "Wed 2026-12-02 03:00", false, "Sat 2026-12-05 02:00"},
		{"Sat,Sun 02:00-04:00", "Sun 2026-12-06 02:30", true, "Sun 2026-12-06 02:30"},
		{"Mon-Fri 22:30-01:00", "Fri 2026-12-04 23:00", true, "Fri 2026-12-04 23:00"},
		{"Mon-Fri 22:30-01:00", "Sat 2026-12-05 00:30", true, "Sat 2026-12-05 00:30"}, // Friday's window
		{"Mon-Fri 22:30-01:00", "Sun 2026-12-06 00:30", false, "Mon 2026-12-07 22:30"},
		{"Fri-Mon 03:00-03:30", "Tue 2026-12-01 03:10", false, "Fri 2026-12-04 03:00"},
	}
	for _, c := range cases {
		w, err := Parse(c.spec)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", c.spec, err)
		}
		now := at(c.now)
		if got := w.Open(now); got != c.open {
			t.Errorf("%q.Open(%s) = %v, want %v", c.spec, c.now, got, c.open)
		}
		if got := w.Next(now); !got.Equal(at(c.next)) {
			t.Errorf("%q.Next(%s) = %s, want %s", c.spec, c.now, got.Format("Mon 2006-01-02 15:04"), c.next)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{"2-4", "02:00", "02:00-02:00", "Someday 02:00-04:00", "25:00-26:00", "Sat 02:00-04:00 extra", "2:00-4:00"} {
		_, err := Parse(s)
		if err == nil {
			t.Errorf("Parse(%q) accepted", s)
			continue
		}
		if !strings.Contains(err.Error(), "hint:") || !strings.Contains(err.Error(), s) {
			t.Errorf("Parse(%q) = %v: want the value and a hint", s, err)
		}
	}
}

func TestFromConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "connector.yaml")
	os.WriteFile(p, []byte("control_plane_url: https://cp.example\nconnector_name: c1\nupdate_window: \"Sat,Sun 02:00-04:00\"\n"), 0o644)
	w, err := FromConfig(p)
	if err != nil || w.Always() || w.String() != "Sat,Sun 02:00-04:00 UTC" {
		t.Errorf("FromConfig = %v, %v", w, err)
	}
	os.WriteFile(p, []byte("control_plane_url: https://cp.example\n"), 0o644)
	if w, err := FromConfig(p); err != nil || !w.Always() {
		t.Errorf("no field: %v, %v", w, err)
	}
	if w, err := FromConfig(filepath.Join(dir, "none.yaml")); err != nil || !w.Always() {
		t.Errorf("no file: %v, %v", w, err)
	}
	os.WriteFile(p, []byte("update_window: \"at night\"\n"), 0o644)
	if _, err := FromConfig(p); err == nil {
		t.Error("a bad window was accepted")
	}
}
