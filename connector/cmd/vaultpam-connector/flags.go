package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
)

// parseFlags parses args into fs and, on a mistake, says what is wrong
// without repeating what was typed: a token or a password pasted as a
// flag (--K7Q2M-…, --json=K7Q2M-…) must not reach the screen or a log,
// and the flag package's own messages repeat both names and values. The
// flags' usage follows the message. fs's output is set to w.
func parseFlags(fs *flag.FlagSet, args []string, w io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(w)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(w, "usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		return err
	}
	msg := "unknown flag (not repeated here: it could be a secret)"
	if m := flagNameRE.FindStringSubmatch(err.Error()); m != nil && fs.Lookup(m[1]) != nil {
		msg = fmt.Sprintf("bad value for flag -%s, or no value (the value is not repeated)", m[1])
	}
	fmt.Fprintf(w, "vaultpam-connector: error: %s: %s\nflags:\n", fs.Name(), msg)
	fs.PrintDefaults()
	return err
}

// flagNameRE finds the flag name in the flag package's errors about a
// defined flag ("invalid value … for flag -json: …", "flag needs an
// argument: -config").
var flagNameRE = regexp.MustCompile(`(?:for (?:flag )?-|needs an argument: -)([A-Za-z0-9-]+)`)
