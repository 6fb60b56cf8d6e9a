package screen

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// TermSize returns the size of the terminal on f (TIOCGWINSZ). A serial
// line often reports 0×0: the size is then unknown, and so is the size of
// anything that is not a terminal.
func TermSize(f *os.File) (Size, error) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return Size{}, fmt.Errorf("reading the terminal size of %s: %w", f.Name(), err)
	}
	return Size{int(ws.Col), int(ws.Row)}, nil
}

// Raw puts the terminal on f into raw mode (no echo, no line buffering, no
// signals from Ctrl-C) and returns a function that restores it. On a file
// that is not a terminal it does nothing and says so.
func Raw(f *os.File) (restore func(), err error) {
	fd := int(f.Fd())
	if !term.IsTerminal(fd) {
		return func() {}, fmt.Errorf("%s is not a terminal", f.Name())
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return func() {}, fmt.Errorf("setting raw mode: %w", err)
	}
	return func() { term.Restore(fd, old) }, nil
}
