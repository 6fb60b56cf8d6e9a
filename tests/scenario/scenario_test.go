package scenario

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/tests/labnet"
	"github.com/vaultpam/appliance/tests/ovfiso"
	"github.com/vaultpam/appliance/tests/qemu"
	"github.com/vaultpam/appliance/tests/vmdisk"
)

var (
	update    = flag.Bool("update", false, "rewrite the documentation screenshot (firstboot/docs)")
	onlySteps = flag.String("steps", "", "run only the steps whose names match this regular expression (and deploy), e.g. -steps 'update' while working on the update steps")
)

func TestMain(m *testing.M) {
	labnet.RelayMain() // QEMU runs this binary as a guestfwd relay
	flag.Parse()
	os.Exit(m.Run())
}

// targetAddr is the session target as the guest reaches it: an echo
// server in the lab's namespace, forwarded by QEMU.
const targetAddr = "10.0.2.101:7000"

// The display sizes vSphere gives a VM's console; one per power-on.
var sizes = [][2]int{{1024, 768}, {1280, 800}, {1920, 1080}}

// shippedDisk converts the VMDK of the OVA in VAULTPAM_OVA to a raw disk in
// dir, with the lab's CA on CONFIG (there is no OVF property for a private
// CA: an operator puts ca.pem on CONFIG, as the README says), and grows it
// by 256 MiB for DATA. It skips t when something needed is missing.
func shippedDisk(t *testing.T, dir string, ca []byte) string {
	t.Helper()
	ova := os.Getenv("VAULTPAM_OVA")
	if ova == "" {
		t.Skip("VAULTPAM_OVA is not set; run `make e2e` or `make test` (they build the OVA and set it)")
	}
	if _, err := os.Stat(ova); err != nil {
		t.Skipf("VAULTPAM_OVA %s is missing; run `make ova`", ova)
	}
	for _, tool := range [][2]string{{"qemu-img", "qemu-utils"}, {"debugfs", "e2fsprogs"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			t.Skipf("%s is not installed (package %s)", tool[0], tool[1])
		}
	}
	disk := filepath.Join(dir, "disk.raw")
	if err := vmdisk.FromOVA(ova, disk); err != nil {
		t.Fatalf("taking the disk out of %s: %v", ova, err)
	}
	if err := vmdisk.WriteFiles(disk, "VPAM-CONFIG", map[string]string{"ca.pem": string(ca)}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(disk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, fi.Size()+256<<20); err != nil {
		t.Fatal(err)
	}
	t.Logf("disk from %s (%d MiB)", filepath.Base(ova), (fi.Size()+256<<20)>>20)
	return disk
}

// TestScenario runs the appliance's life on vSphere-like hardware, on the
// disk taken out of the shipped OVA: an unattended deploy through the OVF
// ISO transport, a session through the appliance, a warm reboot from the
// console, a shutdown from the console and a power-on, DATA wiped (Needs
// recovery) and a recovery token typed on the serial console — the same
// connector ID throughout. Each power-on uses another display size, and
// the health screen is captured at each.
func TestScenario(t *testing.T) {
	qemu.SkipIfUnavailable(t)
	if err := ovfiso.Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	net := labnet.New(t, dir)
	net.EchoTarget(t, targetAddr)
	disk := shippedDisk(t, dir, net.CA)
	a := NewAppliance(t, dir, net, qemu.VSphereConfig(disk), "scenario-1")
	a.Config.MemoryMiB = 2048 // the OVA's default
	a.Config.NoReboot = true  // a guest reset restarts QEMU: see qemu.Config.NoReboot
	steps := Steps()
	if f, err := findUpdateFiles(); err != nil {
		t.Logf("the A/B update steps are left out: %v", err)
	} else {
		steps = withUpdates(steps, f)
	}
	if *onlySteps != "" {
		steps = selectSteps(t, steps, *onlySteps)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Minute)
	defer cancel()
	Run(ctx, t, a, steps)
}

// selectSteps keeps deploy (every other step needs an enrolled
// appliance) and the steps whose names match expr.
func selectSteps(t *testing.T, steps []Step, expr string) []Step {
	re, err := regexp.Compile(expr)
	if err != nil {
		t.Fatalf("-steps %q: %v", expr, err)
	}
	var out []Step
	for i, s := range steps {
		if i == 0 || re.MatchString(s.Name) {
			out = append(out, s)
		}
	}
	return out
}

// withUpdates puts the A/B update steps before "DATA wiped": the updater
// refuses every update while /data is a tmpfs (guided recovery mode, which
// the wiped DATA leaves for good: nothing formats it again), so they must
// run while DATA is whole.
func withUpdates(steps []Step, f *updateFiles) []Step {
	for i, s := range steps {
		if s.Name == "DATA wiped" {
			return append(append(append([]Step(nil), steps[:i]...), updateSteps(f)...), steps[i:]...)
		}
	}
	return append(steps, updateSteps(f)...)
}

// Steps is the scenario's step list, in order.
func Steps() []Step {
	return []Step{
		{"deploy (OVF ISO)", stepDeploy},
		{"session 1 MiB", stepSession},
		{"warm reboot (B, Y)", stepWarmReboot},
		{"shutdown (S, Y)", stepShutdown},
		{"power on", stepPowerOn},
		{"DATA wiped", stepWipeData},
		{"recovery token", stepRecover},
	}
}

// stepDeploy attaches the OVF environment (all properties, DHCP) on the
// IDE CD-ROM, powers on and waits for the unattended setup to end on the
// health screen — Online, with nobody pressing a key.
func stepDeploy(ctx context.Context, a *Appliance) error {
	token, err := a.Net.Lab.Authority.CreateToken(a.Name, time.Hour)
	if err != nil {
		return err
	}
	iso, err := ovfiso.Write(a.Dir, "ovf-env.iso", map[string]string{
		"vaultpam.token":             token,
		"vaultpam.control_plane_url": a.Net.URL(),
		"vaultpam.connector_name":    a.Name,
		"vaultpam.hostname":          "vpam-scenario",
		"vaultpam.ip":                "", // DHCP
	})
	if err != nil {
		return err
	}
	for i := range a.Config.Drives {
		if a.Config.Drives[i].ID == "cd0" {
			a.Config.Drives[i].Path = iso
		}
	}
	mark := a.Mark()
	w, h := sizes[0][0], sizes[0][1]
	if err := a.PowerOn(ctx, w, h); err != nil {
		return err
	}
	// Nobody types anything: the console finds the OVF environment on the
	// CD-ROM and sets the appliance up (on whichever console wins the
	// wizard lock), and the connector enrols.
	_, c, err := a.WaitLab(mark, bootTimeout+onlineWithin, a.online)
	if err != nil {
		return err
	}
	a.ID = c.ID
	a.T.Logf("enrolled unattended as %s (%s) %s after power-on", c.Name, c.ID, a.M.Since().Round(time.Second))
	// The console returns to the health screen by itself: nobody is at
	// the console of an unattended deploy. If it waits for a key instead,
	// that is an error, but the scenario goes on (Enter) so the later
	// steps still run.
	if _, err := a.Expect(reHealth, keyTimeout); err != nil {
		a.T.Errorf("after the unattended setup the serial console did not turn to the health screen by itself; pressing Enter to go on: %v", err)
		if err := a.Press("\r"); err != nil {
			return err
		}
		if _, err := a.Expect(reHealth, keyTimeout); err != nil {
			return err
		}
	}
	if _, err := a.Expect(reStateOnline, onlineWithin); err != nil {
		return err
	}
	// The ID is on the line after State, which may still be on its way.
	if !strings.Contains(a.M.Output(), "(ID "+a.ID+")") {
		if _, err := a.Expect(regexp.MustCompile(`\(ID `+regexp.QuoteMeta(a.ID)+`\)`), keyTimeout); err != nil {
			return wrong("the health screen does not show the connector ID %s: %v", a.ID, err)
		}
	}
	return a.shoot(w, h)
}

// shoot takes the VGA screendump of the health screen at w×h, after the
// tty1 console has had a moment to draw.
func (a *Appliance) shoot(w, h int) error {
	time.Sleep(3 * time.Second)
	p, img, err := a.Screenshot(fmt.Sprintf("health-%dx%d", w, h), w, h)
	if err != nil {
		return err
	}
	cw, ch := Coverage(img)
	a.T.Logf("VGA console at %dx%d: %s; the console spans %.0f%% of its width, %.0f%% of its height", w, h, p, 100*cw, 100*ch)
	// The title bar is the first text row and the key help the last, both
	// across the whole width: a console that fills the framebuffer spans
	// nearly all of it (the font's cells may leave a few pixels over).
	if cw < 0.9 || ch < 0.9 {
		return wrong("the VGA console spans %.0f%%×%.0f%% of the %dx%d screen, want it to fill the screen (see %s)", 100*cw, 100*ch, w, h, p)
	}
	if w == 1280 && *update {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile("../../firstboot/docs/console-health-vga.png", b, 0o644)
	}
	return nil
}

// stepSession carries 1 MiB of random bytes lab → tunnel → appliance →
// echo target and back, unchanged.
func stepSession(ctx context.Context, a *Appliance) error {
	if err := a.Net.Lab.Authority.AddResource(lab.Resource{Name: "echo", Address: targetAddr, Connector: a.ID}); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	s, err := a.Net.Lab.Connect(sctx, "echo")
	if err != nil {
		return fmt.Errorf("opening a session to %s through %s: %w", targetAddr, a.ID, err)
	}
	defer s.Close()
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(payload)
		if err == nil {
			err = s.CloseWrite()
		}
		werr <- err
	}()
	s.SetReadDeadline(time.Now().Add(5 * time.Minute))
	got, err := io.ReadAll(s)
	if err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("writing the payload: %w", err)
	}
	if !bytes.Equal(got, payload) {
		return wrong("the echo is %d bytes (sha256 %x), want the %d bytes sent (sha256 %x)", len(got), sha256.Sum256(got), len(payload), sha256.Sum256(payload))
	}
	if r, detail := s.Reason(); r != "" {
		a.T.Logf("session ended: %s %s", r, detail)
	}
	return nil
}

// stepWarmReboot presses B, Y on the serial health screen and waits for
// the appliance to be Online again with the same ID. QEMU keeps running:
// the guest resets itself.
func stepWarmReboot(ctx context.Context, a *Appliance) error {
	mark := a.Mark()
	t0 := time.Now()
	if err := a.Press("b"); err != nil {
		return err
	}
	if _, err := a.Expect(reConfirm, keyTimeout); err != nil {
		return err
	}
	if err := a.Press("y"); err != nil {
		return err
	}
	return a.phases(ctx, t0, mark, reRestarting)
}

// phases waits for the guest to go down (down printed by the kernel),
// come up (firmware, multi-user) and be Online, and logs when each
// happened after t0. A reset ends QEMU when Config.NoReboot is set, and
// FollowReset starts it again.
func (a *Appliance) phases(ctx context.Context, t0 time.Time, mark int, down *regexp.Regexp) error {
	if _, _, err := a.WaitLab(mark, bootTimeout, func(c lab.Connector) bool { return c.ID == a.ID && c.Status == lab.StatusOffline }); err != nil {
		return fmt.Errorf("the lab never saw the connector go offline: %w", err)
	}
	tOffline := time.Since(t0)
	if _, err := a.Expect(down, bootTimeout); err != nil {
		return err
	}
	tDown := time.Since(t0)
	if down == rePowerDown {
		if err := a.M.Wait(time.Minute); err != nil {
			return err
		}
		a.M = nil
		a.T.Logf("offline at the lab after %s, powered off after %s", tOffline.Round(100*time.Millisecond), tDown.Round(100*time.Millisecond))
		return nil
	}
	if err := a.FollowReset(ctx); err != nil {
		return err
	}
	if _, err := a.Expect(reFirmware, bootTimeout); err != nil {
		return err
	}
	tFirmware := time.Since(t0)
	if _, err := a.Expect(reMultiUser, bootTimeout); err != nil {
		return err
	}
	tUp := time.Since(t0)
	if err := a.WaitOnline(mark); err != nil {
		return err
	}
	a.T.Logf("offline at the lab after %s, kernel reset after %s, firmware after %s, multi-user after %s, Online after %s",
		tOffline.Round(100*time.Millisecond), tDown.Round(100*time.Millisecond), tFirmware.Round(100*time.Millisecond),
		tUp.Round(100*time.Millisecond), time.Since(t0).Round(100*time.Millisecond))
	return nil
}

// stepShutdown presses S, Y: the guest powers itself off and QEMU exits.
func stepShutdown(ctx context.Context, a *Appliance) error {
	mark := a.Mark()
	t0 := time.Now()
	if err := a.Press("s"); err != nil {
		return err
	}
	if _, err := a.Expect(reConfirm, keyTimeout); err != nil {
		return err
	}
	if err := a.Press("y"); err != nil {
		return err
	}
	return a.phases(ctx, t0, mark, rePowerDown)
}

// stepPowerOn powers the VM on again (same disk, same EFI variables) at
// the next display size: Online with the same ID, no new enrolment.
func stepPowerOn(ctx context.Context, a *Appliance) error {
	mark := a.Mark()
	before := len(a.Net.Lab.Authority.Connectors())
	w, h := sizes[1][0], sizes[1][1]
	if err := a.PowerOn(ctx, w, h); err != nil {
		return err
	}
	if err := a.WaitOnline(mark); err != nil {
		return err
	}
	if n := len(a.Net.Lab.Authority.Connectors()); n != before {
		return wrong("the lab has %d connectors after the power-on, had %d: the appliance enrolled again", n, before)
	}
	a.T.Logf("Online %s after power-on", a.M.Since().Round(time.Second))
	return a.shoot(w, h)
}

// stepWipeData pulls the plug, zeroes VPAM-DATA and powers on: /data is a
// tmpfs, the connector lost its identity and the console says Needs
// recovery.
func stepWipeData(ctx context.Context, a *Appliance) error {
	if err := a.PowerOff(); err != nil {
		return err
	}
	if err := vmdisk.Wipe(a.Config.Disk, "VPAM-DATA"); err != nil {
		return err
	}
	w, h := sizes[2][0], sizes[2][1]
	if err := a.PowerOn(ctx, w, h); err != nil {
		return err
	}
	if _, err := a.Expect(reNeedsRecov, bootTimeout); err != nil {
		return fmt.Errorf("the console did not say Needs recovery: %w", err)
	}
	if !regexp.MustCompile(`guided recovery mode|/data is tmpfs`).MatchString(a.M.Output()) {
		return wrong("nothing on the serial console says /data fell back to tmpfs")
	}
	return nil
}

// stepRecover issues a recovery token for the connector's ID and types it
// on the serial console's Needs recovery screen: Online with the same ID.
func stepRecover(ctx context.Context, a *Appliance) error {
	token, err := a.Net.Lab.Authority.CreateRecoveryToken(a.ID, time.Hour)
	if err != nil {
		return err
	}
	mark := a.Mark()
	if err := a.Press(token + "\r"); err != nil {
		return err
	}
	if _, err := a.WaitLabOnline(mark); err != nil {
		return err
	}
	// The console confirms and offers the way back to the health screen.
	if _, err := a.Expect(regexp.MustCompile(`is Online \(ID `+regexp.QuoteMeta(a.ID)+`\)`), keyTimeout); err != nil {
		return err
	}
	if err := a.Press("\r"); err != nil {
		return err
	}
	if _, err := a.Expect(reStateOnline, keyTimeout); err != nil {
		return err
	}
	return a.shoot(sizes[2][0], sizes[2][1])
}
