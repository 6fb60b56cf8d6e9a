package ovfenv

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// renderedLine is what a line of a networkd or timesyncd file written by
// the console may look like: a comment, a blank line, a section header or
// one Key=Value whose value has no control character and no bracket (a
// value can never open a section or add a line).
var renderedLine = regexp.MustCompile(`^(#[^\x00-\x08\x0a-\x1f\x7f]*|\[[A-Za-z0-9]+\]|[A-Za-z0-9]+=[^\x00-\x1f\x7f\[\]]*|)$`)

// FuzzParse runs an OVF environment document from the untrusted CD-ROM or
// guestinfo through everything the console does with it: Parse, Apply to
// the defaults, and — when the settings validate, as the console requires
// before writing — the files it renders. Property: nothing panics, and no
// value from the document can add a line or a section to a rendered file.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../testdata/ovf-env-full.xml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`<?xml version="1.0"?><Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"><PropertySection><Property oe:key="vaultpam.hostname" oe:value="a&#10;[Match]"/></PropertySection></Environment>`))
	f.Add([]byte(`<Environment><PropertySection><Property key="vaultpam.dns" value="192.0.2.1&#13;Gateway=1.2.3.4"/></PropertySection></Environment>`))
	f.Add([]byte(`<Environment xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"><PropertySection><Property oe:key="vaultpam.hostname" oe:value="v6"/><Property oe:key="vaultpam.ip" oe:value="none"/><Property oe:key="vaultpam.ipv6" oe:value="2001:db8::10/64"/><Property oe:key="vaultpam.ipv6_gateway" oe:value="fe80::1"/><Property oe:key="vaultpam.vlan" oe:value="42"/><Property oe:key="vaultpam.dns" oe:value="2001:db8::53"/><Property oe:key="vaultpam.control_plane_url" oe:value="https://[2001:db8::1]:8443"/><Property oe:key="vaultpam.connector_name" oe:value="v6"/></PropertySection></Environment>`))
	f.Add([]byte("<!DOCTYPE x [<!ENTITY a \"aaaaaaaa\">]><Environment>&a;&a;&a;</Environment>"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		env, err := Parse(doc)
		if err != nil {
			return
		}
		s := settings.Default()
		s.Interface = "ens192"
		tok := env.Apply(&s)
		if _, err := protocol.ParseToken(tok); err == nil && s.Validate() == nil {
			// The token is handed over, never rendered: it must not show in any file.
			for _, text := range []string{s.NetworkUnitText(), s.VLANNetdevText(), s.VLANUnitText(), s.TimesyncdText()} {
				if strings.Contains(text, tok) {
					t.Fatalf("the token reached a rendered file:\n%s", text)
				}
			}
		}
		if s.Validate() != nil {
			return
		}
		for name, text := range map[string]string{"network": s.NetworkUnitText(), "vlan netdev": s.VLANNetdevText(),
			"vlan network": s.VLANUnitText(), "timesyncd.conf": s.TimesyncdText()} {
			for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
				if !renderedLine.MatchString(line) {
					t.Fatalf("%s has a line a value made: %q\nfull file:\n%s", name, line, text)
				}
			}
		}
		if _, err := s.ConnectorYAMLText(nil, ""); err != nil {
			t.Fatalf("connector.yaml for valid settings: %v", err)
		}
	})
}

// FuzzReadISOFile reads ovf-env.xml from arbitrary bytes taken as an ISO
// 9660 image (the CD-ROM is untrusted): it never panics, never allocates
// past the limit, and returns either the file or an error. The fuzzer
// mutates the parts that matter — the primary volume descriptor, the root
// directory and the data after it — and the image is assembled around
// them (16 empty system-area blocks), so inputs stay small.
func FuzzReadISOFile(f *testing.F) {
	const bs = 2048
	for _, iso := range [][]byte{
		makeISO("OVF_ENV.XML;1", []byte("<Environment/>")),
		makeISO("ovf-env.xml", bytes.Repeat([]byte("x"), 3000)),
		makeISO("OTHER.TXT;1", []byte("no")),
	} {
		f.Add(bytes.TrimRight(iso[16*bs:17*bs], "\x00"), bytes.TrimRight(iso[18*bs:19*bs], "\x00"), bytes.TrimRight(iso[19*bs:], "\x00"))
	}
	f.Fuzz(func(t *testing.T, pvd, dir, data []byte) {
		img := make([]byte, 18*bs, 18*bs+bs+len(data))
		copy(img[16*bs:17*bs], pvd)
		img = append(img, make([]byte, bs)...)
		copy(img[18*bs:], dir)
		img = append(img, data...)
		const max = 64 << 10
		b, err := ReadISOFile(bytes.NewReader(img), "ovf-env.xml", max)
		if err == nil && int64(len(b)) > max {
			t.Fatalf("read %d bytes, more than the limit %d", len(b), max)
		}
	})
}
