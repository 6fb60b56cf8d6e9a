// Package ovfiso makes what vSphere's ISO transport hands a deployed VM:
// an OVF environment document in VMware's format (an <Environment> with
// oe: attributes, a PlatformSection and a PropertySection) written as
// ovf-env.xml onto an ISO 9660 image, which the test attaches as the VM's
// CD-ROM.
package ovfiso

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// Document returns the OVF environment holding props (key → value), with
// the properties sorted by key as vSphere writes them.
func Document(props map[string]string) []byte {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<Environment
     xmlns="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:ve="http://www.vmware.com/schema/ovfenv"
     oe:id=""
     ve:vCenterId="vm-1001">
   <PlatformSection>
      <Kind>VMware ESXi</Kind>
      <Version>8.0.2</Version>
      <Vendor>VMware, Inc.</Vendor>
      <Locale>en</Locale>
   </PlatformSection>
   <PropertySection>
`)
	for _, k := range keys {
		fmt.Fprintf(&b, "         <Property oe:key=\"%s\" oe:value=\"%s\"/>\n", attr(k), attr(props[k]))
	}
	b.WriteString(`   </PropertySection>
   <ve:EthernetAdapterSection>
      <ve:Adapter ve:mac="00:50:56:a1:b2:c3" ve:network="VM Network" ve:unitNumber="7"/>
   </ve:EthernetAdapterSection>
</Environment>
`)
	return b.Bytes()
}

func attr(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Available reports why an ISO cannot be made here, or nil.
func Available() error {
	if _, err := exec.LookPath("genisoimage"); err != nil {
		return fmt.Errorf("genisoimage is not installed (package genisoimage)")
	}
	return nil
}

// Write makes dir/name (an ISO image, volume label OVF ENV as vSphere's)
// holding ovf-env.xml with props, and returns its path. The document
// holds whatever props hold, tokens included: keep the ISO in a test's
// temporary directory.
func Write(dir, name string, props map[string]string) (string, error) {
	if err := Available(); err != nil {
		return "", err
	}
	src, err := os.MkdirTemp(dir, "ovfenv-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	if err := os.WriteFile(filepath.Join(src, "ovf-env.xml"), Document(props), 0o600); err != nil {
		return "", err
	}
	iso := filepath.Join(dir, name)
	out, err := exec.Command("genisoimage", "-quiet", "-J", "-r", "-V", "OVF ENV", "-o", iso, src).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("genisoimage: %v: %s", err, out)
	}
	return iso, nil
}

// WriteT is Write for a test: it skips t when genisoimage is missing and
// fails it on errors.
func WriteT(t testing.TB, dir, name string, props map[string]string) string {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	iso, err := Write(dir, name, props)
	if err != nil {
		t.Fatal(err)
	}
	return iso
}
