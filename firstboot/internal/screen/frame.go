// Package screen draws full-screen text frames on a terminal and reads keys
// from it. It needs nothing but cursor addressing, erase-line and the bold
// and reverse attributes, so it works the same on the Linux VGA console
// (TERM=linux), on a VT220-class serial line and in a pseudo-terminal under
// test. No colours, no mouse, no terminfo database.
package screen

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The smallest frame, and the size of the zero Frame. 80×24 fits both the
// VGA console's text mode (80×25) and a serial terminal's usual 80×24.
// Screens are never laid out smaller: on a smaller terminal the frame is
// drawn at 80×24 and the terminal cuts it.
const (
	Cols = 80
	Rows = 24
)

// Size is a terminal's or a frame's size in characters.
type Size struct{ Cols, Rows int }

// MinSize is the smallest frame: Cols × Rows.
var MinSize = Size{Cols, Rows}

// Fit returns the frame size for a terminal of size s: s, but never less
// than MinSize in either direction (an unknown size, zero, gives MinSize).
func Fit(s Size) Size {
	return Size{max(s.Cols, Cols), max(s.Rows, Rows)}
}

func (s Size) String() string { return fmt.Sprintf("%dx%d", s.Cols, s.Rows) }

// Attr is a text attribute.
type Attr uint8

// Attributes; they combine.
const (
	Plain   Attr = 0
	Bold    Attr = 1 << 0
	Reverse Attr = 1 << 1
)

// Span is text drawn with one attribute.
type Span struct {
	Text string
	Attr Attr
}

// Line is one screen row.
type Line []Span

// Text returns the line's characters without attributes.
func (l Line) Text() string {
	var b strings.Builder
	for _, s := range l {
		b.WriteString(s.Text)
	}
	return b.String()
}

// Frame is a whole screen of a given size: its lines are cut at the
// size's columns and rows. The zero Frame is an empty MinSize screen.
type Frame struct {
	size  Size
	lines []Line
}

// NewFrame returns an empty frame of size s (at least MinSize).
func NewFrame(s Size) *Frame { return &Frame{size: Fit(s)} }

// Size returns the frame's size.
func (f *Frame) Size() Size { return Fit(f.size) }

// Add appends a line of spans.
func (f *Frame) Add(spans ...Span) { f.lines = append(f.lines, Line(spans)) }

// Text appends a plain line.
func (f *Frame) Text(s string) { f.Add(Span{Text: s}) }

// Blank appends an empty line.
func (f *Frame) Blank() { f.Add() }

// Wrap appends s as plain lines, word-wrapped to the frame's width after
// an indent.
func (f *Frame) Wrap(indent int, attr Attr, s string) {
	for _, l := range WrapText(s, f.Size().Cols-indent-1) {
		f.Add(Span{Text: strings.Repeat(" ", indent) + l, Attr: attr})
	}
}

// Len returns the number of lines so far.
func (f *Frame) Len() int { return len(f.lines) }

// Fill pads with blank lines up to row n (0-based count of lines).
func (f *Frame) Fill(n int) {
	for len(f.lines) < n {
		f.Blank()
	}
}

// Lines returns the frame's rows, exactly as many as its size has, each
// cut to its columns.
func (f *Frame) Lines() []Line {
	sz := f.Size()
	out := make([]Line, sz.Rows)
	for i := 0; i < sz.Rows && i < len(f.lines); i++ {
		out[i] = clip(f.lines[i], sz.Cols)
	}
	return out
}

// String renders the frame as plain text, one row a line, trailing spaces
// removed: what a person reads, and what golden files hold.
func (f *Frame) String() string {
	var b strings.Builder
	for _, l := range f.Lines() {
		b.WriteString(strings.TrimRight(l.Text(), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

func clip(l Line, width int) Line {
	var out Line
	n := 0
	for _, s := range l {
		if n >= width {
			break
		}
		t := s.Text
		if c := utf8.RuneCountInString(t); n+c > width {
			t = string([]rune(t)[:width-n])
		}
		n += utf8.RuneCountInString(t)
		out = append(out, Span{Text: t, Attr: s.Attr})
	}
	return out
}

// Pad returns s padded with spaces (or cut) to exactly width characters.
func Pad(s string, width int) string {
	r := []rune(s)
	if len(r) >= width {
		return string(r[:width])
	}
	return s + strings.Repeat(" ", width-len(r))
}

// WrapText breaks s into lines of at most width characters at spaces.
func WrapText(s string, width int) []string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		words := strings.Fields(para)
		if len(words) == 0 {
			out = append(out, "")
			continue
		}
		line := ""
		for _, w := range words {
			switch {
			case line == "":
				line = w
			case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) <= width:
				line += " " + w
			default:
				out = append(out, line)
				line = w
			}
		}
		out = append(out, line)
	}
	return out
}
