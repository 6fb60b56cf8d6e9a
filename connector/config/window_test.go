package config

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	at := func(day string, hhmm string) time.Time {
		// 2026-11-30 is a Monday.
		base := map[string]string{"Mon": "2026-11-30", "Tue": "2026-12-01", "Sat": "2026-12-05", "Sun": "2026-12-06"}[day]
		tm, err := time.Parse("2006-01-02 15:04", base+" "+hhmm)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		w    string
		t    time.Time
		open bool
	}{
		{"", at("Mon", "12:00"), true},
		{"02:00-04:00", at("Mon", "02:00"), true},
		{"02:00-04:00", at("Mon", "03:59"), true},
		{"02:00-04:00", at("Mon", "04:00"), false},
		{"02:00-04:00", at("Mon", "01:59"), false},
		{"Sat,Sun 02:00-04:00", at("Sat", "03:00"), true},
		{"Sat,Sun 02:00-04:00", at("Mon", "03:00"), false},
		{"22:00-02:00", at("Mon", "23:00"), true},
		{"22:00-02:00", at("Tue", "01:00"), true},
		{"Mon 22:00-02:00", at("Tue", "01:00"), true},
		{"Mon 22:00-02:00", at("Mon", "01:00"), false},
	} {
		w, err := ParseWindow(tc.w)
		if err != nil {
			t.Fatalf("ParseWindow(%q) = %v", tc.w, err)
		}
		if got := w.Open(tc.t); got != tc.open {
			t.Errorf("%q at %s: open = %v, want %v", tc.w, tc.t.Format("Mon 15:04"), got, tc.open)
		}
	}
	w, _ := ParseWindow("Sat,Sun 02:00-04:00")
	if n := w.Next(at("Mon", "12:00")); n.Weekday() != time.Saturday || n.Hour() != 2 || n.Minute() != 0 {
		t.Errorf("Next from Monday noon = %s, want Saturday 02:00", n)
	}
	if w.String() != "Sat,Sun 02:00-04:00" {
		t.Errorf("String = %q", w.String())
	}
	for _, bad := range []string{"2-4", "02:00", "Funday 02:00-04:00", "02:00-02:00", "25:00-26:00"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) = nil error", bad)
		}
	}
}
