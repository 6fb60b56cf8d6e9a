package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// run executes a command with extra environment and stdin; a failure
// carries the tail of its output.
func run(ctx context.Context, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		s := strings.TrimSpace(out.String())
		if len(s) > 3000 {
			s = "…" + s[len(s)-3000:]
		}
		return "", fmt.Errorf("%s: %w\n%s", name, err, s)
	}
	return out.String(), nil
}
