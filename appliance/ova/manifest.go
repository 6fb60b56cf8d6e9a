package ova

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
)

// ManifestEntry is one line of an OVF manifest.
type ManifestEntry struct {
	Name   string
	SHA256 string // lowercase hex
}

// Manifest renders entries as the .mf vSphere and ovftool accept: exactly
// "SHA256(name)= hex" per line, no space before the parenthesis.
func Manifest(entries []ManifestEntry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "SHA256(%s)= %s\n", e.Name, e.SHA256)
	}
	return b.Bytes()
}

var manifestLine = regexp.MustCompile(`^SHA256\(([^()]+)\)= ([0-9a-f]{64})$`)

// ParseManifest reads a .mf written by Manifest and rejects any other form.
func ParseManifest(r io.Reader) ([]ManifestEntry, error) {
	var out []ManifestEntry
	s := bufio.NewScanner(r)
	for n := 1; s.Scan(); n++ {
		m := manifestLine.FindStringSubmatch(s.Text())
		if m == nil {
			return nil, fmt.Errorf("manifest line %d %q: want SHA256(name)= hex", n, s.Text())
		}
		out = append(out, ManifestEntry{Name: m[1], SHA256: m[2]})
	}
	return out, s.Err()
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
