package scenario

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/lab/inspect"
	"github.com/vaultpam/appliance/tests/labnet"
	"github.com/vaultpam/appliance/tests/ovfiso"
	"github.com/vaultpam/appliance/tests/qemu"
	"github.com/vaultpam/appliance/tests/vmdisk"
)

// The field network: IPv6 only, on VLAN 42. The guest's card is a trunk
// port of a user-space switch (labnet.NewSwitched); the router
// 2001:db8::1 is a tap in the lab's namespace, and the lab listens behind
// it on 2001:db8:cafe::1, reached only through the default route.
const (
	fieldVLAN   = 42
	fieldAddr   = "2001:db8::10/64"
	fieldRouter = "2001:db8::1"
	fieldLab    = "[2001:db8:cafe::1]:8443"
	fieldProxy  = "[2001:db8:cafe::2]:3128"
)

// fieldDisk is the appliance's disk: the shipped OVA's (VAULTPAM_OVA),
// else the raw image (VAULTPAM_DISK, build/disk.raw), grown by 256 MiB for
// DATA. Nothing is put on CONFIG: the CA comes from the OVF environment.
func fieldDisk(t *testing.T, dir string) string {
	t.Helper()
	disk := filepath.Join(dir, "disk.raw")
	switch ova, raw := os.Getenv("VAULTPAM_OVA"), os.Getenv("VAULTPAM_DISK"); {
	case ova != "" && fileExists(ova):
		if err := vmdisk.FromOVA(ova, disk); err != nil {
			t.Fatalf("taking the disk out of %s: %v", ova, err)
		}
	case raw != "" && fileExists(raw):
		if out, err := exec.Command("cp", "--sparse=always", raw, disk).CombinedOutput(); err != nil {
			t.Fatalf("copying %s: %v: %s", raw, err, out)
		}
	default:
		t.Skip("neither VAULTPAM_OVA nor VAULTPAM_DISK names a built image; run `make ova` or `make image`")
	}
	fi, err := os.Stat(disk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, fi.Size()+256<<20); err != nil {
		t.Fatal(err)
	}
	return disk
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestScenarioField deploys the appliance on an IPv6-only network on a
// tagged VLAN, with the lab's private CA from the OVF environment, and
// tries a wrong network change: one VM carries the steps.
func TestScenarioField(t *testing.T) {
	qemu.SkipIfUnavailable(t)
	if err := ovfiso.Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	net, sw := labnet.NewSwitched(t, dir, labnet.SwitchedConfig{VLAN: fieldVLAN, Router: fieldRouter + "/64", Lab: fieldLab})
	disk := fieldDisk(t, dir)
	a := NewAppliance(t, dir, net, qemu.VSphereConfig(disk), "field-1")
	a.Config.MemoryMiB = 2048
	sw.ConfigureSwitched(&a.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	f := &field{sw: sw, proxy: net.StartInspectingProxy(t, fieldProxy)}
	Run(ctx, t, a, []Step{
		{"deploy: IPv6 only, VLAN 42, inspecting proxy, CA from OVF", f.deploy},
		{"wrong gateway, not kept: reverted", f.wrongGateway},
	})
}

type field struct {
	sw    *labnet.Switch
	proxy *inspect.Proxy // TLS-inspecting, re-signs with its own CA
}

// deploy: the OVF environment on the CD-ROM says no IPv4, a static IPv6
// address, VLAN 42, the TLS-inspecting proxy, and as vaultpam.ca_cert the
// lab's CA and the proxy's; the appliance configures itself,
// systemd-networkd makes ens….42, the console's checks and the enrolment
// go through the proxy re-signed, the mutual TLS passed through, and the
// connector is Online over IPv6 through the tagged port.
func (f *field) deploy(ctx context.Context, a *Appliance) error {
	token, err := a.Net.Lab.Authority.CreateToken(a.Name, time.Hour)
	if err != nil {
		return err
	}
	iso, err := ovfiso.Write(a.Dir, "ovf-env.iso", map[string]string{
		"vaultpam.token":             token,
		"vaultpam.control_plane_url": "https://" + fieldLab,
		"vaultpam.connector_name":    a.Name,
		"vaultpam.hostname":          "vpam-field",
		"vaultpam.ip":                "none",
		"vaultpam.ipv6":              fieldAddr,
		"vaultpam.ipv6_gateway":      fieldRouter,
		"vaultpam.vlan":              fmt.Sprint(fieldVLAN),
		"vaultpam.dns":               "2001:db8::53",
		"vaultpam.proxy":             "http://" + fieldProxy,
		"vaultpam.ca_cert":           base64.StdEncoding.EncodeToString(append(append([]byte{}, a.Net.CA...), f.proxy.CA...)),
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
	if err := a.PowerOn(ctx, 1024, 768); err != nil {
		return err
	}
	c, err := a.WaitLabOnline(mark)
	if err != nil {
		return err
	}
	a.ID = c.ID
	if _, err := a.Expect(reStateOnline, onlineWithin); err != nil {
		return fmt.Errorf("the lab sees the connector online, the serial console does not say Online: %w", err)
	}
	a.T.Logf("Online over IPv6 on VLAN %d as %s; switch: %d tagged frames in, %d dropped, %d out",
		fieldVLAN, c.ID, f.sw.Tagged.Load(), f.sw.Dropped.Load(), f.sw.ToGuest.Load())
	if f.sw.Tagged.Load() == 0 {
		return wrong("online, yet no frame tagged with VLAN %d reached the switch", fieldVLAN)
	}
	a.T.Logf("proxy: %d TLS sessions re-signed, %d passed through, %d dropped for a client certificate",
		f.proxy.Inspected.Load(), f.proxy.Spliced.Load(), f.proxy.Excluded.Load())
	if f.proxy.Inspected.Load() == 0 || f.proxy.Spliced.Load() == 0 {
		return wrong("online, yet not through the inspecting proxy (re-signed and passed-through sessions both expected)")
	}
	return nil
}

// wrongGateway: N on the serial health screen, the IPv6 gateway changed
// to an address nobody answers for, nothing pressed: the countdown runs
// out, the previous settings come back by themselves, Online again.
func (f *field) wrongGateway(ctx context.Context, a *Appliance) error {
	send := func(b string) error {
		time.Sleep(300 * time.Millisecond)
		return a.M.Send([]byte(b))
	}
	steps := []struct {
		want string
		keys string // typed rune by rune
		raw  string // sent as one write (escape sequences)
	}{
		{"", "n", ""},
		{"Network card", "\r", ""},
		{"IPv4 is off", "", "\x1b[6~"}, // PgDn: the IPv6 and VLAN page
		{"IPv6 gateway", "", "\x1b[B"},
		{"", "", "\x1b[B"},
		{"", "", "\x1b[B"},
		{"", "\x15" + "2001:db8::99" + "\r\r", ""},
		{"Nothing has been changed yet", "\r", ""},
	}
	for _, s := range steps {
		if s.want != "" {
			if _, err := a.Expect(regexp.MustCompile(regexp.QuoteMeta(s.want)), keyTimeout); err != nil {
				return err
			}
		}
		if s.keys != "" {
			if err := a.Press(s.keys); err != nil {
				return err
			}
		}
		if s.raw != "" {
			if err := send(s.raw); err != nil {
				return err
			}
		}
	}
	if _, err := a.Expect(regexp.MustCompile(`unless you keep these`), keyTimeout); err != nil {
		return err
	}
	start := time.Now()
	if _, err := a.Expect(regexp.MustCompile(`control plane is not reachable yet`), 2*time.Minute); err != nil {
		return fmt.Errorf("the wrong gateway was not seen to fail: %w", err)
	}
	if _, err := a.Expect(regexp.MustCompile(`previous network settings are back`), 5*time.Minute); err != nil {
		return err
	}
	a.T.Logf("reverted by itself %s after the change", time.Since(start).Round(time.Second))
	// Online again: the lab lists it so (polled: it may be back before
	// this step looks).
	deadline := time.Now().Add(onlineWithin)
	for {
		var now lab.Connector
		for _, c := range a.Net.Lab.Authority.Connectors() {
			if c.ID == a.ID {
				now = c
			}
		}
		if now.Status == lab.StatusOnline {
			break
		}
		if time.Now().After(deadline) {
			return wrong("after the revert the lab lists %s as %q (%s)", a.ID, now.Status, now.StatusReason)
		}
		time.Sleep(time.Second)
	}
	if err := a.Press("\r"); err != nil {
		return err
	}
	if _, err := a.Expect(reStateOnline, onlineWithin); err != nil {
		return fmt.Errorf("the health screen does not say Online after the revert: %w", err)
	}
	return nil
}
