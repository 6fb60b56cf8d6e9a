package screen

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Renderer draws frames on a terminal, rewriting only the rows that changed
// since the previous frame (a serial line at 115200 baud redraws a full
// screen in about 0.2 s, so this matters). Not safe for concurrent use.
type Renderer struct {
	w    io.Writer
	prev []string // encoded rows last drawn; nil forces a full redraw
	size Size     // of the frame last drawn
}

// NewRenderer returns a renderer writing to w.
func NewRenderer(w io.Writer) *Renderer { return &Renderer{w: w} }

// Invalidate forces the next Draw to repaint every row (after another
// program used the terminal, or after a resize).
func (r *Renderer) Invalidate() { r.prev = nil }

// Draw paints f. A frame of another size than the last one is drawn in
// full on a cleared screen.
func (r *Renderer) Draw(f *Frame) error {
	bw := bufio.NewWriterSize(r.w, 8192)
	sz := f.Size()
	if r.prev == nil || sz != r.size {
		// Reset attributes, hide the cursor, clear.
		bw.WriteString("\x1b[0m\x1b[?25l\x1b[H\x1b[2J")
		r.size = sz
		r.prev = make([]string, sz.Rows)
		for i := range r.prev {
			r.prev[i] = "\x00" // never equal to an encoded row
		}
	}
	for i, l := range f.Lines() {
		enc := encode(l)
		if enc == r.prev[i] {
			continue
		}
		fmt.Fprintf(bw, "\x1b[%d;1H%s\x1b[0m\x1b[K", i+1, enc)
		r.prev[i] = enc
	}
	fmt.Fprintf(bw, "\x1b[%d;%dH", sz.Rows, sz.Cols)
	return bw.Flush()
}

// Restore shows the cursor again and clears the screen, for when the
// program exits or hands the terminal to another program.
func (r *Renderer) Restore() error {
	r.prev = nil
	_, err := io.WriteString(r.w, "\x1b[0m\x1b[H\x1b[2J\x1b[?25h")
	return err
}

func encode(l Line) string {
	var b strings.Builder
	cur := Plain
	for _, s := range l {
		if s.Attr != cur {
			b.WriteString("\x1b[0")
			if s.Attr&Bold != 0 {
				b.WriteString(";1")
			}
			if s.Attr&Reverse != 0 {
				b.WriteString(";7")
			}
			b.WriteByte('m')
			cur = s.Attr
		}
		// Only printable characters reach the terminal.
		for _, c := range s.Text {
			if c < 0x20 || c == 0x7f {
				c = '?'
			}
			b.WriteRune(c)
		}
	}
	return b.String()
}
