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
	"strings"
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

// Start boots cfg. Stop the machine with Shutdown, PowerOff or Kill; ctx
// ending kills it too.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("qemu config: %w", err)
	}
	dir, err := os.MkdirTemp("", "vaultpam-qemu-")
	if err != nil {
		return nil, err
	}
	vars, err := varsFile(cfg, dir)
	if err != nil {
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

// varsFile returns the EFI variable store for this run: cfg.VarsFile
// (made from the template the first time), or a fresh copy in dir.
func varsFile(cfg Config, dir string) (string, error) {
	dst := cfg.VarsFile
	if dst == "" {
		dst = filepath.Join(dir, "OVMF_VARS.fd")
	} else if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	data, err := os.ReadFile(cfg.OVMFVars)
	if err != nil {
		return "", fmt.Errorf("reading OVMF vars: %w", err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return "", fmt.Errorf("writing the VM's OVMF vars: %w", err)
	}
	return dst, nil
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

// Mark makes later Expect calls look only at output printed from now on,
// e.g. before a key that makes the screen change.
func (m *Machine) Mark() {
	m.mu.Lock()
	m.pos = m.out.Len()
	m.mu.Unlock()
}

// Since is how long the machine has been running.
func (m *Machine) Since() time.Duration { return time.Since(m.started) }

// ErrExited is returned by Expect when QEMU exits before the match.
var ErrExited = errors.New("qemu exited")

// Expect waits until re matches the serial output after the previous
// match (or Mark) and returns the submatches. It fails after timeout or
// when QEMU exits; the error quotes the end of the output.
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

// Type sends each key of keys on the serial console with a pause after
// it, the way a person types: a full-screen program that repaints after
// every key sees each one on its own.
func (m *Machine) Type(keys string, pause time.Duration) error {
	for _, r := range keys {
		if err := m.Send([]byte(string(r))); err != nil {
			return err
		}
		time.Sleep(pause)
	}
	return nil
}

// Done is closed when QEMU has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Wait waits up to timeout for QEMU to exit (the guest powered off).
func (m *Machine) Wait(timeout time.Duration) error {
	select {
	case <-m.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("the guest did not power off within %s; output ends:\n%s", timeout, m.tail())
	}
}

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

// PowerOff pulls the plug (QMP quit: no ACPI event, the guest gets no say,
// like vSphere's Power Off) and waits for QEMU to exit.
func (m *Machine) PowerOff() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	if _, err := m.QMP("quit", nil); err != nil && !isClosed(m.done) {
		m.Kill()
		return fmt.Errorf("QMP quit: %w", err)
	}
	if err := m.Wait(time.Minute); err != nil {
		m.Kill()
		return err
	}
	return nil
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// PowerButton presses the ACPI power button (QMP system_powerdown, like
// vSphere's "Shut Down Guest OS" without VMware Tools). The guest decides
// what to do.
func (m *Machine) PowerButton() error {
	_, err := m.QMP("system_powerdown", nil)
	return err
}

// Reset resets the machine at once (QMP system_reset, like vSphere's Reset).
func (m *Machine) Reset() error {
	_, err := m.QMP("system_reset", nil)
	return err
}

// Shutdown asks the guest to power off (ACPI) and waits up to timeout, then
// kills QEMU. It returns an error when the guest did not power off itself.
func (m *Machine) Shutdown(timeout time.Duration) error {
	select {
	case <-m.done:
		return nil
	default:
	}
	if err := m.PowerButton(); err != nil {
		m.Kill()
		return fmt.Errorf("asking for power-off: %w", err)
	}
	if err := m.Wait(timeout); err != nil {
		m.Kill()
		return err
	}
	return nil
}

// ChangeMedium puts the image at path into the CD-ROM drive id (a
// Drive.ID), as an operator attaches an ISO to a running VM. The guest
// sees a media change. When the guest holds the tray locked (Linux locks
// it while the drive is open), the old medium is ejected by force first,
// as vSphere does when the operator overrides the guest's lock.
func (m *Machine) ChangeMedium(id, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	args := map[string]any{"id": id, "filename": abs, "format": "raw", "read-only-mode": "read-only"}
	_, err = m.QMP("blockdev-change-medium", args)
	if err != nil && strings.Contains(err.Error(), "is locked") {
		if err := m.Eject(id); err != nil {
			return fmt.Errorf("ejecting the locked medium of %s: %w", id, err)
		}
		_, err = m.QMP("blockdev-change-medium", args)
	}
	return err
}

// Eject removes the medium from the CD-ROM drive id, even when the guest
// has locked the tray.
func (m *Machine) Eject(id string) error {
	_, err := m.QMP("eject", map[string]any{"id": id, "force": true})
	return err
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
