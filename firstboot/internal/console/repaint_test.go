package console

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
)

// lockedBuffer is a terminal's output, read while the app writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) clears() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), "\x1b[2J")
}

// TestRepaintSignalRedrawsEverything: after something else wrote on the
// terminal (the boot report on ttyS0), a signal on Env.Repaint clears the
// screen and draws every row again, as Ctrl-L does; without it the
// renderer would only rewrite rows it believes changed.
func TestRepaintSignalRedrawsEverything(t *testing.T) {
	repaint := make(chan os.Signal, 1)
	a := New(Env{Root: configuredRoot(t), TTY: "ttyS0", Net: fakeNet{}, Probes: fixedProbes(), Repaint: repaint,
		Connector: &fakeStatus{st: localapi.Status{State: state.Online.String(), Mode: localapi.ModeAutonomousRestart}}})
	in, inW := io.Pipe()
	defer inW.Close()
	out := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, in, out) }()
	defer func() {
		cancel()
		<-done
	}()

	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitUntil("the first full draw", func() bool { return out.clears() == 1 })
	repaint <- syscall.SIGWINCH
	waitUntil("a second full draw after the repaint signal", func() bool { return out.clears() == 2 })
	out.mu.Lock()
	tail := out.b.String()[strings.LastIndex(out.b.String(), "\x1b[2J"):]
	out.mu.Unlock()
	for _, row := range []string{"VaultPAM Connector - Health", "Control plane", "Root verity", "R re-enrol"} {
		if !strings.Contains(tail, row) {
			t.Errorf("the repaint did not redraw %q", row)
		}
	}
}
