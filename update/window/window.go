// Package window is the maintenance window in which the appliance may
// reboot into an installed update: the optional update_window field of the
// connector's configuration (/config/connector.yaml).
//
// Format (times are UTC, 24-hour):
//
//	""                        reboot at once after the install
//	"02:00-04:00"             every day from 02:00 to 04:00
//	"Sat,Sun 02:00-04:00"     on those weekdays (Mon Tue Wed Thu Fri Sat Sun)
//	"Mon-Fri 22:30-01:00"     a range of weekdays; a window past midnight
//	                          belongs to the day it starts on
//
// Start and end must differ; a window is at least one minute long.
package window

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Window is a parsed maintenance window. The zero value is "always open".
type Window struct {
	spec  string
	days  [7]bool // by time.Weekday; all false = every day
	start int     // minutes after midnight UTC
	end   int
	set   bool
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Parse parses a window; "" is the always-open window.
func Parse(s string) (Window, error) {
	s = strings.TrimSpace(s)
	w := Window{spec: s}
	if s == "" {
		return w, nil
	}
	bad := func(why string) (Window, error) {
		return Window{}, fmt.Errorf("update_window %q: %s (hint: write it like \"02:00-04:00\" or \"Sat,Sun 02:00-04:00\", times in UTC)", s, why)
	}
	fields := strings.Fields(s)
	var times string
	switch len(fields) {
	case 1:
		times = fields[0]
	case 2:
		times = fields[1]
		for _, d := range strings.Split(fields[0], ",") {
			from, to, isRange := strings.Cut(strings.ToLower(d), "-")
			a, ok1 := dayNames[from]
			b, ok2 := dayNames[to]
			if !isRange {
				b, ok2 = a, ok1
			}
			if !ok1 || !ok2 {
				return bad(fmt.Sprintf("%q is not a weekday (Mon Tue Wed Thu Fri Sat Sun) or a range of them", d))
			}
			for i := a; ; i = (i + 1) % 7 {
				w.days[i] = true
				if i == b {
					break
				}
			}
		}
	default:
		return bad("want [DAYS] HH:MM-HH:MM")
	}
	from, to, ok := strings.Cut(times, "-")
	if !ok {
		return bad("want HH:MM-HH:MM")
	}
	var err error
	if w.start, err = clock(from); err != nil {
		return bad(err.Error())
	}
	if w.end, err = clock(to); err != nil {
		return bad(err.Error())
	}
	if w.start == w.end {
		return bad("start and end are the same time")
	}
	w.set = true
	return w, nil
}

func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("%q is not a time HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func (w Window) String() string {
	if !w.set {
		return "at once"
	}
	return w.spec + " UTC"
}

// Always reports the always-open window.
func (w Window) Always() bool { return !w.set }

func (w Window) dayAllowed(d time.Weekday) bool {
	for _, on := range w.days {
		if on {
			return w.days[d]
		}
	}
	return true
}

// Open reports whether t is inside the window.
func (w Window) Open(t time.Time) bool {
	if !w.set {
		return true
	}
	t = t.UTC()
	m := t.Hour()*60 + t.Minute()
	if w.start < w.end {
		return w.dayAllowed(t.Weekday()) && m >= w.start && m < w.end
	}
	// Past midnight: the evening part belongs to today, the morning part
	// to yesterday's window.
	if m >= w.start {
		return w.dayAllowed(t.Weekday())
	}
	return m < w.end && w.dayAllowed(t.AddDate(0, 0, -1).Weekday())
}

// Next returns t when the window is open at t, else the next time it
// opens.
func (w Window) Next(t time.Time) time.Time {
	if w.Open(t) {
		return t
	}
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	for i := 0; i <= 7; i++ {
		d := day.AddDate(0, 0, i)
		start := d.Add(time.Duration(w.start) * time.Minute)
		if start.After(t) && w.dayAllowed(d.Weekday()) {
			return start
		}
	}
	return t // unreachable for a valid window
}

// FromConfig reads update_window from the connector's configuration file
// at path. A missing file or field is the always-open window. Only this
// field is read: the connector validates the rest.
func FromConfig(path string) (Window, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Window{}, nil
	}
	if err != nil {
		return Window{}, fmt.Errorf("reading the maintenance window: %w", err)
	}
	var c struct {
		UpdateWindow string `yaml:"update_window"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return Window{}, fmt.Errorf("reading the maintenance window from %s: %w", path, err)
	}
	return Parse(c.UpdateWindow)
}
