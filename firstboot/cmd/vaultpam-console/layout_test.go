package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLayoutFollowsTerminal: the real binary lays its screens out for the
// terminal's size (TIOCGWINSZ): 85×32 (1024×768 with a 12×24 font) and
// 120×33 (1920×1080 with 16×32) fill the terminal; a terminal smaller than
// 80×24 still gets the 80×24 layout; a resize (SIGWINCH) redraws at the
// new size.
func TestLayoutFollowsTerminal(t *testing.T) {
	h := newHarness(t)
	flags := []string{"--ovf-env", "/nonexistent/ovf-env.xml"}
	for _, term := range []terminal{{"linux", 85, 32}, {"linux", 120, 33}} {
		s := fmt.Sprintf("w%dx%d", term.cols, term.rows)
		h.startOn(s, "tty1", term, flags...)
		scr := h.waitFor(s, "Enter begin setup")
		h.golden(fmt.Sprintf("layout-welcome-%dx%d", term.cols, term.rows), scr)
		lines := strings.Split(strings.TrimRight(scr, "\n"), "\n")
		if len(lines) != term.rows || !strings.Contains(lines[term.rows-1], "Enter begin setup") {
			t.Errorf("%s: the key help is not on the last of %d rows:\n%s", s, term.rows, scr)
		}
		// The tty's name closes the title bar, one space (and the margin
		// of the centred column) from the right edge.
		margin := (term.cols - min(term.cols, 100)) / 2
		if got, want := strings.LastIndex(lines[0], "tty1")+len("tty1"), term.cols-1-margin; got != want {
			t.Errorf("%s: the title bar ends at column %d, want %d:\n%q", s, got, want, lines[0])
		}
	}

	// Smaller than 80×24: drawn at 80×24 (the terminal cuts it). The raw
	// output addresses row 24 and parks the cursor at 24;80.
	raw := filepath.Join(filepath.Dir(h.log), "small.raw")
	h.startOn("small", "tty1", terminal{"linux", 70, 20}, flags...)
	run(t, "tmux", "-L", h.tmux, "pipe-pane", "-t", "small", "-o", "cat >> "+raw)
	h.keys("small", "C-l") // a full repaint, into the pipe
	h.waitFor("small", "Enter begin setup")
	// The pipe copies the repaint asynchronously: wait until it is in the
	// file (or the deadline, for a loaded machine), then check it.
	var b []byte
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if b, _ = os.ReadFile(raw); strings.Contains(string(b), "\x1b[24;80H") {
			break
		}
	}
	for _, want := range []string{"\x1b[24;1H", "\x1b[24;80H"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("output on a 70x20 terminal lacks %q: not drawn at 80x24:\n%q", want, b)
		}
	}
	if strings.Contains(string(b), "\x1b[20;70H") {
		t.Errorf("output on a 70x20 terminal was laid out at 70x20:\n%q", b)
	}

	// A resize redraws at the new size.
	h.startOn("grow", "tty1", vga, flags...)
	h.waitFor("grow", "Enter begin setup")
	run(t, "tmux", "-L", h.tmux, "resize-window", "-t", "grow", "-x", "120", "-y", "33")
	scr := h.waitFor("grow", strings.Repeat(" ", 60)+"tty1")
	lines := strings.Split(strings.TrimRight(scr, "\n"), "\n")
	if len(lines) != 33 || !strings.Contains(lines[32], "Enter begin setup") {
		t.Errorf("after a resize to 120x33 the key help is not on row 33:\n%s", scr)
	}
}
