package console

import (
	"strings"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
)

// fieldKind is how a form field takes input.
type fieldKind int

const (
	fieldText   fieldKind = iota
	fieldChoice           // Left/Right/Space cycle through choices
	fieldToken            // masked, grouped 5-5-5-5 as typed
)

// field is one input of a form.
type field struct {
	label   string
	kind    fieldKind
	value   string
	choices []string
	max     int                 // characters; 0 = 60
	hidden  func() bool         // not shown (e.g. static-only fields under DHCP)
	check   func(string) string // "" when valid, else what is wrong and what is expected
	note    string              // shown when the field is focused
}

// form is a vertical list of fields with one focused; errors show in place
// (a "!" before the field, the message in the message line).
type form struct {
	title, intro string
	fields       []*field
	focus        int
	errs         map[int]string
	done         func(a *App) // all fields valid, Enter on the last one
	back         func(a *App) // Esc
	more         func(a *App) // PgDn: a second page (nil: none)
	moreHelp     string       // its key help, e.g. "PgDn IPv6/VLAN"
}

func (f *form) visible(i int) bool { return f.fields[i].hidden == nil || !f.fields[i].hidden() }

func (f *form) move(d int) {
	for i := f.focus + d; i >= 0 && i < len(f.fields); i += d {
		if f.visible(i) {
			f.focus = i
			return
		}
	}
}

func (f *form) validate(i int) bool {
	if f.errs == nil {
		f.errs = map[int]string{}
	}
	delete(f.errs, i)
	fd := f.fields[i]
	if !f.visible(i) || fd.check == nil {
		return true
	}
	if msg := fd.check(fd.value); msg != "" {
		f.errs[i] = msg
		return false
	}
	return true
}

func (f *form) key(a *App, k screen.Key) {
	if f.errs == nil {
		f.errs = map[int]string{}
	}
	fd := f.fields[f.focus]
	switch k.Kind {
	case screen.KeyEsc:
		if f.back != nil {
			f.back(a)
		}
	case screen.KeyPgDown:
		if f.more != nil {
			f.more(a)
		}
	case screen.KeyUp, screen.KeyBackTab:
		f.move(-1)
	case screen.KeyDown, screen.KeyTab:
		f.validate(f.focus)
		f.move(1)
	case screen.KeyEnter:
		if !f.validate(f.focus) {
			return
		}
		last := true
		for i := f.focus + 1; i < len(f.fields); i++ {
			if f.visible(i) {
				last = false
			}
		}
		if !last {
			f.move(1)
			return
		}
		for i := range f.fields {
			if !f.validate(i) {
				f.focus = i
				return
			}
		}
		f.done(a)
	case screen.KeyLeft, screen.KeyRight:
		if fd.kind == fieldChoice {
			f.cycle(fd, k.Kind == screen.KeyRight)
		}
	case screen.KeyBackspace:
		if fd.kind != fieldChoice && fd.value != "" {
			fd.value = fd.value[:len(fd.value)-1]
		}
		delete(f.errs, f.focus)
	case screen.KeyCtrlU:
		if fd.kind != fieldChoice {
			fd.value = ""
		}
		delete(f.errs, f.focus)
	case screen.KeyRune:
		switch fd.kind {
		case fieldChoice:
			if k.Rune == ' ' {
				f.cycle(fd, true)
			}
		case fieldToken:
			f.typeToken(fd, k.Rune)
		default:
			max := fd.max
			if max == 0 {
				max = 60
			}
			if len(fd.value) < max && k.Rune >= 0x20 && k.Rune < 0x7f {
				fd.value += string(k.Rune)
				delete(f.errs, f.focus)
			}
		}
	}
}

func (f *form) cycle(fd *field, fwd bool) {
	i := 0
	for j, c := range fd.choices {
		if c == fd.value {
			i = j
		}
	}
	if fwd {
		i = (i + 1) % len(fd.choices)
	} else {
		i = (i + len(fd.choices) - 1) % len(fd.choices)
	}
	fd.value = fd.choices[i]
}

// typeToken accepts token characters only; separators are implied by the
// grouping, so '-' and spaces are ignored rather than counted.
func (f *form) typeToken(fd *field, r rune) {
	switch {
	case r == '-' || r == ' ':
		return
	case !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'):
		f.errs[f.focus] = "Token: only letters and digits are part of a token; groups are separated for you"
		return
	case len(fd.value) >= protocol.TokenChars:
		f.errs[f.focus] = "Token: already 20 characters; Enter to check it, Backspace to correct"
		return
	}
	delete(f.errs, f.focus)
	fd.value += strings.ToUpper(string(r))
}

// maskToken shows n typed characters as '*' in groups of 5, with '_' for
// the characters still to type: "*****-***__-_____-_____".
func maskToken(n int) string {
	var b strings.Builder
	for i := 0; i < protocol.TokenChars; i++ {
		if i > 0 && i%protocol.TokenGroup == 0 {
			b.WriteByte('-')
		}
		if i < n {
			b.WriteByte('*')
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (f *form) lines(a *App) []screen.Line {
	var out []screen.Line
	if f.intro != "" {
		out = append(out, a.wrap(2, f.intro)...)
		out = append(out, blank())
	}
	for i, fd := range f.fields {
		if !f.visible(i) {
			continue
		}
		mark := "  "
		if f.errs[i] != "" {
			mark = "! "
		}
		lbl := screen.Span{Text: mark + screen.Pad(fd.label, 20) + " "}
		var val string
		switch fd.kind {
		case fieldChoice:
			for _, c := range fd.choices {
				if c == fd.value {
					val += "(*) " + c + "  "
				} else {
					val += "( ) " + c + "  "
				}
			}
		case fieldToken:
			val = maskToken(len(fd.value))
		default:
			val = fd.value
		}
		if i == f.focus {
			lbl.Attr = screen.Bold
			cursor := ""
			if fd.kind == fieldText {
				cursor = "_"
			}
			out = append(out, screen.Line{lbl, {Text: "[" + screen.Pad(val+cursor, 40) + "]", Attr: screen.Reverse}})
		} else {
			out = append(out, screen.Line{lbl, {Text: "[" + screen.Pad(val, 40) + "]"}})
		}
	}
	if fd := f.fields[f.focus]; fd.note != "" && f.errs[f.focus] == "" {
		out = append(out, blank())
		out = append(out, a.wrap(2, fd.note)...)
	}
	return out
}

// message is the focused field's problem, or else the first problem.
func (f *form) message() string {
	if m := f.errs[f.focus]; m != "" {
		return m
	}
	for i := range f.fields {
		if m := f.errs[i]; m != "" && f.visible(i) {
			return m
		}
	}
	return ""
}

func (f *form) draw(a *App) page {
	help := "Enter next  Up/Down move  Esc back"
	if f.fields[f.focus].kind == fieldChoice {
		help = "Left/Right choose  Enter next  Up/Down move  Esc back"
	}
	if f.fields[f.focus].kind == fieldToken {
		help = "Enter check  Backspace erase  Ctrl-U clear  Esc back"
	}
	if f.moreHelp != "" {
		help = strings.Replace(help, "  Esc back", "  "+f.moreHelp+"  Esc back", 1)
	}
	return page{title: f.title, body: f.lines(a), msg: f.message(), help: help}
}
