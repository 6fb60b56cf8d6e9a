package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/tests/labnet"
	"github.com/vaultpam/appliance/tests/qemu"
)

// Screen texts of the console on the serial line (the console draws each
// line whole: text and attributes, no cursor moves inside a line).
var (
	attrs         = `(?:\x1b\[[0-9;]*m)*`
	reHealth      = regexp.MustCompile(`VaultPAM Connector - Health`)
	reStateOnline = regexp.MustCompile(`State +` + attrs + ` ?Online\b`)
	reNeedsRecov  = regexp.MustCompile(`State +` + attrs + ` ?Needs recovery\b`)
	reConfirm     = regexp.MustCompile(`Y yes`)
	reWelcome     = regexp.MustCompile(`Enter begin setup`)
	reMultiUser   = regexp.MustCompile(`Reached target .*Multi-User System`)
	reRestarting  = regexp.MustCompile(`reboot: Restarting system`)
	rePowerDown   = regexp.MustCompile(`reboot: Power down`)
	reFirmware    = regexp.MustCompile(`BdsDxe: (loading|starting) Boot`)
)

// How long a step waits for the guest. TCG on a shared 2-core machine
// boots in one to three minutes; these are deadlines, not expectations.
const (
	bootTimeout  = 10 * time.Minute
	keyTimeout   = 2 * time.Minute
	onlineWithin = 5 * time.Minute
	keyPause     = 150 * time.Millisecond
)

// Appliance is the VM under test: its disk and EFI variables outlive QEMU
// runs, like a vSphere VM's, and M is the running QEMU (nil while the VM
// is off). Steps use it from one goroutine.
type Appliance struct {
	T   *testing.T
	Dir string
	// Net holds the lab and the targets the guest reaches.
	Net *labnet.Net
	// Config is the virtual hardware; Disk its boot disk. VarsFile is set.
	Config qemu.Config
	// M is the running QEMU, nil while powered off.
	M *qemu.Machine
	// Name is the connector's name; ID its ID once enrolled.
	Name, ID string
	// Shots collects screendumps (the test's artifact directory).
	Shots string
	// Width and Height are the display size of the current power-on.
	Width, Height int

	log     *os.File // every run's serial output, with step markers
	logMu   sync.Mutex
	midLine bool      // the transcript's last byte was not a newline
	t0      time.Time // the transcript's time stamps count from here
}

// NewAppliance makes the VM for disk in dir, with its EFI variable store
// in dir and QEMU inside net's namespace.
func NewAppliance(t *testing.T, dir string, net *labnet.Net, cfg qemu.Config, name string) *Appliance {
	t.Helper()
	cfg.VarsFile = filepath.Join(dir, "OVMF_VARS.fd")
	net.Configure(t, &cfg)
	log, err := os.Create(filepath.Join(dir, "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	a := &Appliance{T: t, Dir: dir, Net: net, Config: cfg, Name: name, Shots: t.ArtifactDir(), log: log, t0: time.Now()}
	t.Cleanup(func() {
		if a.M != nil {
			a.M.Kill()
		}
		log.Close()
		if t.Failed() {
			if b, err := os.ReadFile(log.Name()); err == nil {
				// The whole transcript stays with the artifacts (make test:
				// build/test-artifacts), the test's directory does not.
				kept := filepath.Join(a.Shots, "serial.log")
				if err := os.WriteFile(kept, b, 0o644); err != nil {
					kept = log.Name() + " while the test runs"
				}
				t.Logf("serial output of every run (all of it in %s):\n%s", kept, tail(string(b), 12000))
			}
		}
	})
	return a
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// logf writes a marker line into the serial transcript.
func (a *Appliance) logf(format string, args ...any) {
	a.logMu.Lock()
	defer a.logMu.Unlock()
	fmt.Fprintf(a.log, "\n[scenario %s] %s\n", time.Now().Format("15:04:05.0"), fmt.Sprintf(format, args...))
	a.midLine = false
}

// serialLog is the writer QEMU's serial output goes to. The transcript
// (serial.log, for people) starts each line with the seconds since the
// test began, so a slow shutdown shows where it waited; Expect works on
// the untouched output.
type serialLog struct{ a *Appliance }

func (w serialLog) Write(p []byte) (int, error) {
	a := w.a
	a.logMu.Lock()
	defer a.logMu.Unlock()
	n := len(p)
	for len(p) > 0 {
		if !a.midLine {
			fmt.Fprintf(a.log, "%8.1f| ", time.Since(a.t0).Seconds())
		}
		i := bytes.IndexByte(p, '\n')
		line := p
		if i >= 0 {
			line = p[:i+1]
		}
		if _, err := a.log.Write(line); err != nil {
			return 0, err
		}
		a.midLine = i < 0
		p = p[len(line):]
	}
	return n, nil
}

var _ io.Writer = serialLog{}

// PowerOn starts QEMU on the VM's disk and EFI variables; the display has
// width×height (0: OVMF's default, 1280×800).
func (a *Appliance) PowerOn(ctx context.Context, width, height int) error {
	if a.M != nil {
		select {
		case <-a.M.Done():
		default:
			return errors.New("powering on: the VM is running already")
		}
	}
	cfg := a.Config
	a.Width, a.Height = width, height
	cfg.Width, cfg.Height = width, height
	cfg.Log = serialLog{a}
	a.logf("power on (%dx%d)", width, height)
	m, err := qemu.Start(ctx, cfg)
	if err != nil {
		return err
	}
	a.M = m
	return nil
}

// FollowReset waits, after the guest asked for a reset, for QEMU to end
// (Config.NoReboot) and starts it again on the same disk, EFI variables
// and display: to the guest this is the machine resetting, only faster
// under TCG than a reset in place.
func (a *Appliance) FollowReset(ctx context.Context) error {
	if !a.Config.NoReboot {
		return nil
	}
	if a.M == nil {
		return errors.New("the VM is off")
	}
	if err := a.M.Wait(time.Minute); err != nil {
		return fmt.Errorf("QEMU did not end at the guest's reset (-no-reboot): %w", err)
	}
	a.logf("guest reset: QEMU started again")
	a.M = nil
	return a.PowerOn(ctx, a.Width, a.Height)
}

// ChangeMedium puts iso into CD-ROM drive id, in the running QEMU and for
// every later power-on (a vSphere VM keeps its connected ISO).
func (a *Appliance) ChangeMedium(id, iso string) error {
	found := false
	for i := range a.Config.Drives {
		if a.Config.Drives[i].ID == id {
			a.Config.Drives[i].Path, found = iso, true
		}
	}
	if !found {
		return fmt.Errorf("the VM has no drive %s", id)
	}
	a.logf("CD-ROM %s: %s", id, filepath.Base(iso))
	if a.M == nil {
		return nil
	}
	return a.M.ChangeMedium(id, iso)
}

// PowerOff pulls the plug (no shutdown in the guest), like vSphere's
// Power Off.
func (a *Appliance) PowerOff() error {
	if a.M == nil {
		return nil
	}
	a.logf("power off (hard)")
	err := a.M.PowerOff()
	a.M = nil
	return err
}

// Expect waits for re in the serial output printed since the last match
// or Mark.
func (a *Appliance) Expect(re *regexp.Regexp, within time.Duration) ([]string, error) {
	if a.M == nil {
		return nil, errors.New("the VM is off")
	}
	m, err := a.M.Expect(re, within)
	if err != nil {
		return nil, timeout(err)
	}
	return m, nil
}

// Press types keys on the serial console after a pause that lets the
// console finish drawing.
func (a *Appliance) Press(keys string) error {
	if a.M == nil {
		return errors.New("the VM is off")
	}
	time.Sleep(300 * time.Millisecond)
	return a.M.Type(keys, keyPause)
}

// Mark makes later Expect calls and WaitLab look only at what happens
// from now on; it returns the lab's position for WaitLab.
func (a *Appliance) Mark() int {
	if a.M != nil {
		a.M.Mark()
	}
	return a.Net.Mark()
}

// WaitLab waits until the lab records a status change at or after mark
// that match accepts.
func (a *Appliance) WaitLab(mark int, within time.Duration, match func(lab.Connector) bool) (int, lab.Connector, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	i, c, err := a.Net.WaitFor(ctx, mark, match)
	if err != nil {
		return 0, c, timeout(err)
	}
	return i, c, nil
}

// online matches this appliance's connector, Online and not draining.
func (a *Appliance) online(c lab.Connector) bool {
	return c.Name == a.Name && (a.ID == "" || c.ID == a.ID) && c.Status == lab.StatusOnline && c.StatusReason == ""
}

// WaitLabOnline waits for the lab to see the connector come Online (after
// mark) and checks it has the same ID as before, if it had one.
func (a *Appliance) WaitLabOnline(mark int) (lab.Connector, error) {
	_, c, err := a.WaitLab(mark, onlineWithin+bootTimeout, func(c lab.Connector) bool {
		return c.Name == a.Name && c.Status == lab.StatusOnline && c.StatusReason == ""
	})
	if err != nil {
		return c, err
	}
	if a.ID != "" && c.ID != a.ID {
		return c, wrong("the connector came back as %s, want the same ID %s", c.ID, a.ID)
	}
	return c, nil
}

// WaitOnline is WaitLabOnline, then the serial console's health screen
// must say Online.
func (a *Appliance) WaitOnline(mark int) error {
	if _, err := a.WaitLabOnline(mark); err != nil {
		return err
	}
	if _, err := a.Expect(reStateOnline, onlineWithin); err != nil {
		return fmt.Errorf("the lab sees the connector online, the serial console does not say Online: %w", err)
	}
	return nil
}

// Screenshot saves the VGA screen as name.png in the artifact directory,
// checks it is width×height, and returns its path and the image.
func (a *Appliance) Screenshot(name string, width, height int) (string, image.Image, error) {
	if a.M == nil {
		return "", nil, errors.New("the VM is off")
	}
	p := filepath.Join(a.Shots, name+".png")
	if err := a.M.Screendump(p); err != nil {
		return "", nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return "", nil, fmt.Errorf("screendump %s is not a PNG: %w", p, err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		return p, img, wrong("screendump %s is %dx%d, want %dx%d (the display's EDID size)", name, b.Dx(), b.Dy(), width, height)
	}
	return p, img, nil
}

// Coverage returns the shares of the screen's width and height spanned by
// what is drawn (every pixel that is not black, the console's background):
// 0.5×0.5 for an 80×25 text console (8×16 font) on a 1280×800
// framebuffer, near 1×1 for a console that fills the screen.
func Coverage(img image.Image) (w, h float64) {
	b := img.Bounds()
	minX, minY, maxX, maxY := b.Max.X, b.Max.Y, b.Min.X-1, b.Min.Y-1
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r|g|bl < 0x1000 { // black: the background
				continue
			}
			minX, maxX = min(minX, x), max(maxX, x)
			minY, maxY = min(minY, y), max(maxY, y)
		}
	}
	if maxX < minX {
		return 0, 0
	}
	return float64(maxX-minX+1) / float64(b.Dx()), float64(maxY-minY+1) / float64(b.Dy())
}
