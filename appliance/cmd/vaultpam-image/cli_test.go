package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{nil, 2, "", "hint: run `vaultpam-image build"},
		{[]string{"frobnicate"}, 2, "", "error: missing or unknown command"},
		{[]string{"--help"}, 0, "-source-date-epoch", ""},
		{[]string{"--help"}, 0, "package-stage cache", ""}, // the same flags as build --help
		{[]string{"build", "--out", ""}, 2, "", "output dir is empty"},
		{[]string{"build", "--no-such-flag"}, 2, "", "flag provided but not defined"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), cli{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Args: tt.args})
		if code != tt.code {
			t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, code, tt.code, errb.String())
		}
		if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
			t.Errorf("run(%q): stdout %q stderr %q, want %q / %q", tt.args, out.String(), errb.String(), tt.stdout, tt.stderr)
		}
	}
}
