package scenario

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/tests/labnet"
	"github.com/vaultpam/appliance/tests/ovfiso"
	"github.com/vaultpam/appliance/tests/qemu"
)

// TestScenarioWizard deploys the shipped OVA's disk with no OVF
// environment (an empty CD-ROM) and answers the first-boot wizard over the
// serial console, as an operator at the VM console would: DHCP, the lab's
// URL, a connector name, an enrolment token; then Online.
func TestScenarioWizard(t *testing.T) {
	qemu.SkipIfUnavailable(t)
	if err := ovfiso.Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	net := labnet.New(t, dir)
	disk := shippedDisk(t, dir, net.CA)
	a := NewAppliance(t, dir, net, qemu.VSphereConfig(disk), "wizard-1")
	a.Config.MemoryMiB = 2048
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	Run(ctx, t, a, []Step{
		{"boot to the wizard", stepBootToWizard},
		{"wizard over serial", stepWizard},
	})
}

func stepBootToWizard(ctx context.Context, a *Appliance) error {
	if err := a.PowerOn(ctx, 0, 0); err != nil {
		return err
	}
	if _, err := a.Expect(reWelcome, bootTimeout); err != nil {
		return err
	}
	if strings.Contains(a.M.Output(), "Deployment settings were found") {
		return wrong("the welcome screen says deployment settings were found, with an empty CD-ROM")
	}
	a.T.Logf("wizard on ttyS0 %s after power-on", a.M.Since().Round(time.Second))
	return nil
}

func stepWizard(ctx context.Context, a *Appliance) error {
	token, err := a.Net.Lab.Authority.CreateToken(a.Name, time.Hour)
	if err != nil {
		return err
	}
	mark := a.Mark()
	type exchange struct {
		want string // on the screen first
		keys string // then typed
	}
	for _, e := range []exchange{
		{"", "\r"},
		{"Choose the network card", ""},
		{"connected", "\r"},
		{"Settings for", "\r\r\r\r\r"}, // DHCP; DNS, NTP from DHCP; hostname as offered; no proxy
		{"Control plane URL", "\x15" + a.Net.URL() + "\r\x15" + a.Name + "\r"},
		{"Enrolment token", token + "\r"},
		{"Nothing has been changed yet", "\r"},
	} {
		if e.want != "" {
			if _, err := a.Expect(regexp.MustCompile(regexp.QuoteMeta(e.want)), keyTimeout); err != nil {
				return err
			}
		}
		if e.keys != "" {
			if err := a.Press(e.keys); err != nil {
				return err
			}
		}
	}
	m, err := a.Expect(regexp.MustCompile(`Setup is complete|Setup stopped at the failed step`), onlineWithin)
	if err != nil {
		return err
	}
	if strings.HasPrefix(m[0], "Setup stopped") {
		return wrong("setup failed on the appliance; serial output ends:\n%s", tail(a.M.Output(), 3000))
	}
	_, c, err := a.WaitLab(mark, onlineWithin, a.online)
	if err != nil {
		return err
	}
	a.ID = c.ID
	a.T.Logf("enrolled through the wizard as %s (%s) %s after power-on", c.Name, c.ID, a.M.Since().Round(time.Second))
	if err := a.Press("\r"); err != nil {
		return err
	}
	if _, err := a.Expect(reStateOnline, keyTimeout); err != nil {
		return fmt.Errorf("the health screen does not say Online: %w", err)
	}
	return nil
}
