package scenario

import (
	"context"
	"fmt"
	"image"
	"image/draw"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/tests/labnet"
	"github.com/vaultpam/appliance/tests/ovfiso"
	"github.com/vaultpam/appliance/tests/qemu"
)

// TestScenarioWizard deploys the shipped OVA's disk with no OVF
// environment (an empty CD-ROM) and answers the first-boot wizard over the
// serial console, as an operator at the VM console would: DHCP, the lab's
// URL, a connector name; at the token step a token with a typo first
// (refused before anything is sent), then P, Enter: pairing with a code.
// The code is read off the serial screen, the VGA console's screendump
// holds a QR code that decodes to the approval URL with that code, the lab
// approves it, and the appliance is Online with no token typed.
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
		{"wizard over serial, pairing at the token step", stepWizard},
		{"the code on both consoles, approved in the lab", stepPairApprove},
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

// A token with a wrong check character: the console refuses it before
// anything is sent.
const typoToken = "WQBMX-5KWDB-QXSZ8-DM907"

// reCode is the pairing screen's code line (the code is public).
var reCode = regexp.MustCompile(`Code ([0-9A-Z]{4}-[0-9A-Z]{4}), valid for`)

func stepWizard(ctx context.Context, a *Appliance) error {
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
		{"Enrolment token", typoToken + "\r"},
		{"Token has a typo", "\x15P\r"},
		{"none: pair with a code after applying", "\r"},
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
	return nil
}

// stepPairApprove reads the code off the serial console, decodes the QR
// code on the VGA console, approves the code in the lab and waits for
// Online.
func stepPairApprove(ctx context.Context, a *Appliance) error {
	mark := a.Mark()
	m, err := a.Expect(regexp.MustCompile(reCode.String()+`|Setup stopped at the failed step`), onlineWithin)
	if err != nil {
		return err
	}
	if strings.HasPrefix(m[0], "Setup stopped") {
		return wrong("setup failed on the appliance before pairing; serial output ends:\n%s", tail(a.M.Output(), 3000))
	}
	code := m[1]
	url := a.Net.URL() + protocol.PairPagePath + "?" + protocol.PairPageQuery + "=" + code
	a.T.Logf("the serial console shows code %s %s after power-on", code, a.M.Since().Round(time.Second))
	// The rest of the screen, in the order the console draws its rows
	// (each Expect looks past the previous match).
	for _, f := range []string{a.Net.URL() + protocol.PairPagePath, "Waiting for approval"} {
		if _, err := a.Expect(regexp.MustCompile(regexp.QuoteMeta(f)), keyTimeout); err != nil {
			return fmt.Errorf("the pairing screen on ttyS0 lacks %q: %w", f, err)
		}
	}

	// The VGA console (tty1) follows the serial console's setup and shows
	// the code too: its QR code must decode to the approval URL.
	var got string
	for i := 0; i < 10 && got != url; i++ {
		time.Sleep(3 * time.Second)
		p, img, err := a.Screenshot(fmt.Sprintf("pairing-vga-%d", i), 1280, 800)
		if err != nil {
			return err
		}
		got, err = decodeQR(img)
		a.T.Logf("VGA screendump %s: QR code %q (%v)", p, got, err)
	}
	if got != url {
		return wrong("the VGA console's QR code decodes to %q, want %q", got, url)
	}

	if _, err := a.Net.Lab.Authority.ApprovePairing(code, a.Name, ""); err != nil {
		return fmt.Errorf("approving code %s in the lab: %w", code, err)
	}
	m, err = a.Expect(regexp.MustCompile(`Setup is complete|Setup stopped at the failed step`), onlineWithin)
	if err != nil {
		return err
	}
	if strings.HasPrefix(m[0], "Setup stopped") {
		return wrong("setup failed on the appliance after the approval; serial output ends:\n%s", tail(a.M.Output(), 3000))
	}
	_, c, err := a.WaitLab(mark, onlineWithin, a.online)
	if err != nil {
		return err
	}
	a.ID = c.ID
	a.T.Logf("paired as %s (%s) %s after power-on, no token typed", c.Name, c.ID, a.M.Since().Round(time.Second))
	if err := a.Press("\r"); err != nil {
		return err
	}
	if _, err := a.Expect(reStateOnline, keyTimeout); err != nil {
		return fmt.Errorf("the health screen does not say Online: %w", err)
	}
	if strings.Contains(a.M.Output(), "WQBMX") {
		return wrong("the typed token was echoed on the serial console")
	}
	return nil
}

// decodeQR reads the QR code in a screendump with gozxing (a port of
// ZXing), first in the whole screen, then in its left half (the code is
// drawn left of the large characters).
func decodeQR(img image.Image) (string, error) {
	try := func(img image.Image) (string, error) {
		bmp, err := gozxing.NewBinaryBitmapFromImage(img)
		if err != nil {
			return "", err
		}
		res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]interface{}{gozxing.DecodeHintType_TRY_HARDER: true})
		if err != nil {
			return "", err
		}
		return res.GetText(), nil
	}
	s, err := try(img)
	if err == nil {
		return s, nil
	}
	b := img.Bounds()
	left := image.NewRGBA(image.Rect(0, 0, b.Dx()/2, b.Dy()))
	draw.Draw(left, left.Bounds(), img, b.Min, draw.Src)
	return try(left)
}
