// Package command runs the external tools of the image build (mmdebstrap,
// mksquashfs, veritysetup, objcopy, sfdisk, mkfs, mtools …) the one way the
// build does it: the environment given on top of this process's, stdin if
// any, stdout returned, and a failure that carries the tail of the tool's
// output so it explains itself.
package command

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// tailBytes is how much of a failing tool's output its error carries.
const tailBytes = 3000

// Run runs name with args. env is applied on top of this process's
// environment: "KEY=value" sets KEY, a bare "KEY" removes it. stdin may be
// nil. It returns the command's standard output; on failure the error holds
// the last tailBytes of its standard output and error. The command gets
// standard input, output and error and no other descriptor (see
// closeInherited).
func Run(ctx context.Context, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	closeInherited()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = MergeEnv(os.Environ(), env)
	cmd.Stdin = stdin
	var out, both bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, &both)
	cmd.Stderr = &both
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", name, err, tail(both.String(), tailBytes))
	}
	return out.String(), nil
}

// closeInherited marks every descriptor above standard error that this
// process inherited as close-on-exec (Go opens its own that way). Under
// Packer the plugin inherits make's and Packer's descriptors (up to fd 10
// and 251), which pushed mmdebstrap's pipes to fd 11; its apt hook runs
// "cat >&11" under dash, which reads only one-digit descriptors, and a
// build with a cold package cache failed with "Bad fd number".
func closeInherited() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// MergeEnv returns base with the entries of over applied: "KEY=value"
// replaces KEY, a bare "KEY" deletes it.
func MergeEnv(base, over []string) []string {
	drop := map[string]bool{}
	for _, e := range over {
		k, _, _ := strings.Cut(e, "=")
		drop[k] = true
	}
	var out []string
	for _, e := range base {
		k, _, _ := strings.Cut(e, "=")
		if !drop[k] {
			out = append(out, e)
		}
	}
	for _, e := range over {
		if strings.Contains(e, "=") {
			out = append(out, e)
		}
	}
	return out
}
