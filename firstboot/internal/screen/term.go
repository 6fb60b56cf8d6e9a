package screen

import (
	"fmt"
	"os"

	"golang.org/x/term"
)

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
