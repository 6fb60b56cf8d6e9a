package screen

import (
	"io"
	"time"
)

// KeyKind tells which key was pressed.
type KeyKind int

// Keys the console uses. Everything printable arrives as KeyRune.
const (
	KeyRune KeyKind = iota
	KeyEnter
	KeyBackspace
	KeyTab
	KeyBackTab
	KeyUp
	KeyDown
	KeyLeft
	KeyRight
	KeyEsc
	KeyCtrlC
	KeyCtrlL
	KeyCtrlU
	KeyPgUp
	KeyPgDown
	KeyHome
	KeyEnd
	KeyDelete
	KeyUnknown
)

// Key is one key press.
type Key struct {
	Kind KeyKind
	Rune rune // for KeyRune
}

// escWait is how long a lone ESC waits for the rest of a sequence before
// it counts as the Esc key. Terminals send a sequence in one write, serial
// lines at 9600 baud deliver the next byte within ~1 ms.
const escWait = 40 * time.Millisecond

// ReadKeys decodes key presses from r (a terminal in raw mode) and sends
// them on the returned channel, which closes when r fails or ends.
func ReadKeys(r io.Reader) <-chan Key {
	bytes := make(chan byte, 256)
	go func() {
		defer close(bytes)
		buf := make([]byte, 256)
		for {
			n, err := r.Read(buf)
			for _, b := range buf[:n] {
				bytes <- b
			}
			if err != nil {
				return
			}
		}
	}()
	keys := make(chan Key, 64)
	go func() {
		defer close(keys)
		d := decoder{in: bytes}
		for {
			k, ok := d.next()
			if !ok {
				return
			}
			keys <- k
		}
	}()
	return keys
}

type decoder struct {
	in      <-chan byte
	pending []byte
}

func (d *decoder) get(wait bool) (byte, bool) {
	if len(d.pending) > 0 {
		b := d.pending[0]
		d.pending = d.pending[1:]
		return b, true
	}
	if !wait {
		b, ok := <-d.in
		return b, ok
	}
	select {
	case b, ok := <-d.in:
		return b, ok
	case <-time.After(escWait):
		return 0, false
	}
}

func (d *decoder) next() (Key, bool) {
	b, ok := d.get(false)
	if !ok {
		return Key{}, false
	}
	switch b {
	case '\r', '\n':
		return Key{Kind: KeyEnter}, true
	case 0x7f, 0x08:
		return Key{Kind: KeyBackspace}, true
	case '\t':
		return Key{Kind: KeyTab}, true
	case 0x03:
		return Key{Kind: KeyCtrlC}, true
	case 0x0c:
		return Key{Kind: KeyCtrlL}, true
	case 0x15:
		return Key{Kind: KeyCtrlU}, true
	case 0x1b:
		return d.escape(), true
	}
	if b < 0x20 {
		return Key{Kind: KeyUnknown}, true
	}
	if b < 0x80 {
		return Key{Kind: KeyRune, Rune: rune(b)}, true
	}
	// UTF-8 multi-byte: gather the continuation bytes; the console only
	// accepts ASCII input, so the rune itself is not needed.
	n := 1
	if b >= 0xe0 {
		n = 2
	}
	if b >= 0xf0 {
		n = 3
	}
	for range n {
		d.get(true)
	}
	return Key{Kind: KeyUnknown}, true
}

func (d *decoder) escape() Key {
	b, ok := d.get(true)
	if !ok {
		return Key{Kind: KeyEsc}
	}
	if b != '[' && b != 'O' {
		if b == 0x1b {
			d.pending = append(d.pending, b)
		}
		return Key{Kind: KeyEsc}
	}
	// CSI or SS3: parameters then a final byte in 0x40..0x7e.
	var params []byte
	for {
		c, ok := d.get(true)
		if !ok {
			return Key{Kind: KeyEsc}
		}
		if c >= 0x40 && c <= 0x7e && !(b == '[' && c == '[' && len(params) == 0) {
			switch c {
			case 'A':
				return Key{Kind: KeyUp}
			case 'B':
				return Key{Kind: KeyDown}
			case 'C':
				return Key{Kind: KeyRight}
			case 'D':
				return Key{Kind: KeyLeft}
			case 'H':
				return Key{Kind: KeyHome}
			case 'F':
				return Key{Kind: KeyEnd}
			case 'Z':
				return Key{Kind: KeyBackTab}
			case '~':
				switch string(params) {
				case "1", "7":
					return Key{Kind: KeyHome}
				case "4", "8":
					return Key{Kind: KeyEnd}
				case "3":
					return Key{Kind: KeyDelete}
				case "5":
					return Key{Kind: KeyPgUp}
				case "6":
					return Key{Kind: KeyPgDown}
				}
			}
			return Key{Kind: KeyUnknown}
		}
		params = append(params, c)
	}
}
