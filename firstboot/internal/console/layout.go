package console

// Body-building helpers shared by the views: plain, bold and wrapped lines,
// "label  value" rows, and short forms of values.

import (
	"strings"
	"time"
	"unicode"

	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

func text(s string) screen.Line { return screen.Line{{Text: s}} }

func bold(s string) screen.Line { return screen.Line{{Text: s, Attr: screen.Bold}} }

func blank() screen.Line { return nil }

// maxTextCols is the widest the body's text column gets on a wide
// terminal; the column is centred.
const maxTextCols = 100

// width is the body's text width.
func (a *App) width() int { return min(a.size.Cols, maxTextCols) }

// margin is the blank space left of the body's column.
func (a *App) margin() int { return (a.size.Cols - a.width()) / 2 }

// wrap breaks s into lines of the body's width after indent spaces.
func (a *App) wrap(indent int, s string) []screen.Line {
	var out []screen.Line
	for _, l := range screen.WrapText(s, a.width()-indent-2) {
		out = append(out, text(strings.Repeat(" ", indent)+l))
	}
	return out
}

// kv is a "  Label ........ value" line.
func kv(label, value string) screen.Line {
	return screen.Line{{Text: "  " + screen.Pad(label, 22)}, {Text: value}}
}

// kvWrap is kv with the value wrapped under itself.
func (a *App) kvWrap(label, value string) []screen.Line {
	var out []screen.Line
	for i, l := range screen.WrapText(value, a.width()-26) {
		if i == 0 {
			out = append(out, kv(label, l))
		} else {
			out = append(out, kv("", l))
		}
	}
	return out
}

func clipText(s string, n int) string {
	if n <= 3 {
		return ""
	}
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

func orDash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func orDefault(v, d string) string {
	if strings.TrimSpace(v) == "" {
		return d
	}
	return v
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
