package main

import (
	"os"
	"strings"
	"testing"
)

// TestUnitContract checks the console's units (installed into the image
// from here) own their terminal with the right TERM and come back when the
// program exits.
func TestUnitContract(t *testing.T) {
	for unit, want := range map[string][]string{
		"vaultpam-console-tty1.service":   {"TTYPath=/dev/tty1", "TERM=linux", "StandardInput=tty", "Restart=always", "ExecStart=/usr/bin/vaultpam-console"},
		"vaultpam-console-serial.service": {"TTYPath=/dev/ttyS0", "TERM=vt220", "StandardInput=tty", "Restart=always", "ExecStart=/usr/bin/vaultpam-console"},
	} {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q", unit, w)
			}
		}
	}
}
