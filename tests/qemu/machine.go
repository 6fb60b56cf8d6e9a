package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// Machine is a running QEMU.
type Machine struct {
	cfg  Config
	cmd  *exec.Cmd
	dir  string
	qmp  string
	in   io.WriteCloser
	done chan struct{} // closed when QEMU has exited
	err  error         // QEMU's exit status, set before done closes

	mu      sync.Mutex
	out     bytes.Buffer // everything the serial console printed
	changed chan struct{}
	pos     int // Expect searches from here
	started time.Time
}

// Start boots cfg. Stop the machine with Shutdown or Kill; ctx ending kills
// it too.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("qemu config: %w", err)
	}
	dir, err := os.MkdirTemp("", "vaultpam-qemu-")
	if err != nil {
		return nil, err
	}
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	data, err := os.ReadFile(cfg.OVMFVars)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("reading OVMF vars: %w", err)
	}
	if err := os.WriteFile(vars, data, 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	m := &Machine{cfg: cfg, dir: dir, qmp: filepath.Join(dir, "qmp.sock"), done: make(chan struct{}), changed: make(chan struct{})}
	m.cmd = exec.CommandContext(ctx, cfg.QEMU, cfg.args(vars, m.qmp)...)
	m.cmd.Stderr = &lockedWriter{m: m}
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if m.in, err = m.cmd.StdinPipe(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	m.started = time.Now()
	if err := m.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", cfg.QEMU, err)
	}
	go m.read(stdout)
	return m, nil
}

func (m *Machine) read(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m.append(buf[:n])
		}
		if err != nil {
			break
		}
	}
	m.err = m.cmd.Wait()
	os.RemoveAll(m.dir)
	close(m.done)
}

func (m *Machine) append(p []byte) {
	m.mu.Lock()
	m.out.Write(p)
	if m.cfg.Log != nil {
		m.cfg.Log.Write(p)
	}
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

// lockedWriter adds QEMU's own stderr to the serial transcript, so a
// failure to start shows up where tests look.
type lockedWriter struct{ m *Machine }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.m.append(append([]byte("[qemu] "), p...))
	return len(p), nil
}

// Output returns everything the serial console printed so far.
func (m *Machine) Output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.String()
}

// Since is how long the machine has been running.
func (m *Machine) Since() time.Duration { return time.Since(m.started) }

// ErrExited is returned by Expect when QEMU exits before the match.
var ErrExited = errors.New("qemu exited")

// Expect waits until re matches the serial output after the previous
// match and returns the submatches. It fails after timeout or when QEMU
// exits; the error quotes the end of the output.
func (m *Machine) Expect(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		text := m.out.Bytes()[m.pos:]
		if loc := re.FindSubmatchIndex(text); loc != nil {
			subs := make([]string, len(loc)/2)
			for i := range subs {
				if loc[2*i] >= 0 {
					subs[i] = string(text[loc[2*i]:loc[2*i+1]])
				}
			}
			m.pos += loc[1]
			m.mu.Unlock()
			return subs, nil
		}
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-changed:
		case <-m.done:
			// One more look: the last bytes may have arrived with the exit.
			m.mu.Lock()
			found := re.Match(m.out.Bytes()[m.pos:])
			m.mu.Unlock()
			if found {
				continue
			}
			return nil, fmt.Errorf("waiting for %q: %w (%v); output ends:\n%s", re, ErrExited, m.err, m.tail())
		case <-deadline.C:
			return nil, fmt.Errorf("waiting for %q: no match after %s; output ends:\n%s", re, timeout, m.tail())
		}
	}
}

// ExpectString is Expect for a literal string.
func (m *Machine) ExpectString(s string, timeout time.Duration) error {
	_, err := m.Expect(regexp.MustCompile(regexp.QuoteMeta(s)), timeout)
	return err
}

func (m *Machine) tail() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.out.String()
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}

// SendLine types line and a carriage return on the serial console.
func (m *Machine) SendLine(line string) error {
	_, err := io.WriteString(m.in, line+"\r")
	return err
}

// Send types raw bytes on the serial console.
func (m *Machine) Send(b []byte) error {
	_, err := m.in.Write(b)
	return err
}

// Done is closed when QEMU has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Kill stops QEMU at once and waits for it.
func (m *Machine) Kill() {
	select {
	case <-m.done:
		return
	default:
	}
	m.cmd.Process.Kill()
	<-m.done
}

// Shutdown asks the guest to power off (ACPI) and waits up to timeout, then
// kills QEMU. It returns an error when the guest did not power off itself.
func (m *Machine) Shutdown(timeout time.Duration) error {
	select {
	case <-m.done:
		return nil
	default:
	}
	if _, err := m.QMP("system_powerdown", nil); err != nil {
		m.Kill()
		return fmt.Errorf("asking for power-off: %w", err)
	}
	select {
	case <-m.done:
		return nil
	case <-time.After(timeout):
		m.Kill()
		return fmt.Errorf("guest did not power off within %s", timeout)
	}
}

// Screendump writes the VGA screen as PNG to path.
func (m *Machine) Screendump(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	_, err = m.QMP("screendump", map[string]any{"filename": abs, "format": "png"})
	return err
}
