package config

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Window is a maintenance window for the appliance's update reboots
// (update_window): a daily time range in UTC, optionally on some weekdays
// only. The zero value is "at any time". Written as
//
//	"02:00-04:00"           every day, 02:00 to 04:00 UTC
//	"Sat,Sun 02:00-04:00"   only on Saturdays and Sundays
//	"22:00-02:00"           across midnight (the start day counts)
type Window struct {
	days       [7]bool // by time.Weekday; all false = every day
	start, end int     // minutes after midnight, UTC
	set        bool
}

// ParseWindow parses an update_window value ("" is the zero Window).
func ParseWindow(s string) (Window, error) {
	var w Window
	s = strings.TrimSpace(s)
	if s == "" {
		return w, nil
	}
	rng := s
	if days, r, ok := strings.Cut(s, " "); ok {
		rng = strings.TrimSpace(r)
		for _, d := range strings.Split(days, ",") {
			wd, ok := weekdays[strings.ToLower(strings.TrimSpace(d))]
			if !ok {
				return w, fmt.Errorf("%q is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)", d)
			}
			w.days[wd] = true
		}
	}
	from, to, ok := strings.Cut(rng, "-")
	if !ok {
		return w, fmt.Errorf("%q: want HH:MM-HH:MM (UTC), optionally after weekdays like \"Sat,Sun 02:00-04:00\"", s)
	}
	var err error
	if w.start, err = clock(from); err != nil {
		return w, err
	}
	if w.end, err = clock(to); err != nil {
		return w, err
	}
	if w.start == w.end {
		return w, fmt.Errorf("%q: the window is empty (start equals end)", s)
	}
	w.set = true
	return w, nil
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

func clock(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day like 02:00", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// IsZero reports whether w is "at any time".
func (w Window) IsZero() bool { return !w.set }

// Open reports whether t falls in the window.
func (w Window) Open(t time.Time) bool {
	if !w.set {
		return true
	}
	t = t.UTC()
	m := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	if w.start < w.end {
		return m >= w.start && m < w.end && w.onDay(day)
	}
	// Across midnight: the evening part on the start day, the morning part
	// on the day after it.
	if m >= w.start {
		return w.onDay(day)
	}
	return m < w.end && w.onDay((day+6)%7)
}

func (w Window) onDay(d time.Weekday) bool {
	any := false
	for _, on := range w.days {
		any = any || on
	}
	return !any || w.days[d]
}

// Next returns t if the window is open at t, else when it opens next.
func (w Window) Next(t time.Time) time.Time {
	if w.Open(t) {
		return t
	}
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	for i := 0; i < 8*24*60; i++ {
		if w.Open(t) {
			return t
		}
		t = t.Add(time.Minute)
	}
	return t
}

func (w Window) String() string {
	if !w.set {
		return ""
	}
	var days []string
	for _, d := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday} {
		if w.days[d] {
			days = append(days, d.String()[:3])
		}
	}
	r := fmt.Sprintf("%02d:%02d-%02d:%02d", w.start/60, w.start%60, w.end/60, w.end%60)
	if len(days) > 0 {
		return strings.Join(days, ",") + " " + r
	}
	return r
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (w *Window) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseWindow(n.Value)
	if err != nil {
		return err
	}
	*w = v
	return nil
}

// Equal reports whether w and o are the same window.
func (w Window) Equal(o Window) bool { return w == o }
