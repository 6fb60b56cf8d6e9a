package ovfiso

import (
	"encoding/xml"
	"os/exec"
	"strings"
	"testing"
)

func TestDocumentParses(t *testing.T) {
	doc := Document(map[string]string{"vaultpam.token": "A&B", "vaultpam.hostname": "h\"1"})
	var x struct {
		XMLName xml.Name
		Props   []struct {
			Key   string `xml:"key,attr"`
			Value string `xml:"value,attr"`
		} `xml:"PropertySection>Property"`
	}
	if err := xml.Unmarshal(doc, &x); err != nil {
		t.Fatalf("parsing the document: %v\n%s", err, doc)
	}
	if x.XMLName.Local != "Environment" || x.XMLName.Space != "http://schemas.dmtf.org/ovf/environment/1" {
		t.Errorf("root = %v, want the OVF environment namespace's Environment", x.XMLName)
	}
	got := map[string]string{}
	for _, p := range x.Props {
		got[p.Key] = p.Value
	}
	if got["vaultpam.token"] != "A&B" || got["vaultpam.hostname"] != "h\"1" || len(got) != 2 {
		t.Errorf("properties = %v, want both back unchanged", got)
	}
	if !strings.Contains(string(doc), `oe:key="vaultpam.hostname"`) || strings.Index(string(doc), "hostname") > strings.Index(string(doc), "token") {
		t.Errorf("want oe:key attributes sorted by key:\n%s", doc)
	}
}

// TestWriteISO makes the ISO with genisoimage and reads it back with
// isoinfo (same package): ovf-env.xml at the root, Rock Ridge name intact.
func TestWriteISO(t *testing.T) {
	dir := t.TempDir()
	iso := WriteT(t, dir, "ovf-env.iso", map[string]string{"vaultpam.hostname": "iso-test"})
	if _, err := exec.LookPath("isoinfo"); err != nil {
		t.Skip("isoinfo is not installed (package genisoimage)")
	}
	out, err := exec.Command("isoinfo", "-R", "-i", iso, "-x", "/ovf-env.xml").CombinedOutput()
	if err != nil {
		t.Fatalf("isoinfo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `oe:key="vaultpam.hostname" oe:value="iso-test"`) {
		t.Errorf("ovf-env.xml on the ISO = %s, want the hostname property", out)
	}
}
