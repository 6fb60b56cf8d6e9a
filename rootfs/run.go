package rootfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// run executes a command and returns its error with the tail of its output,
// so a failing mmdebstrap or mksquashfs explains itself. The command gets
// this process's environment with env applied on top: "KEY=value" sets KEY,
// a bare "KEY" removes it.
func run(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = mergeEnv(os.Environ(), env)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, tail(out.String(), 3000))
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// mergeEnv returns base with the entries of over applied: "KEY=value"
// replaces KEY, a bare "KEY" deletes it.
func mergeEnv(base, over []string) []string {
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
