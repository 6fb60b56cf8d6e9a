package redact

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/protocol"
)

func TestString(t *testing.T) {
	tok, err := protocol.NewToken(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := protocol.FormatToken(tok)
	typo := []byte(f)
	typo[0] = map[bool]byte{true: 'A', false: 'B'}[typo[0] != 'A']
	for _, secret := range []string{tok, strings.ToLower(tok), f, strings.ToLower(f), strings.ReplaceAll(f, "-", " "), string(typo)} {
		for _, wrap := range []string{"%s", "unexpected argument %q", "open %s: no such file", "token=%s.", "(%s)"} {
			in := strings.Replace(wrap, "%s", secret, 1)
			in = strings.Replace(in, "%q", `"`+secret+`"`, 1)
			if got := String(in); strings.Contains(strings.ToUpper(got), strings.ToUpper(secret)) || !strings.Contains(got, Token) {
				t.Errorf("String(%q) = %q", in, got)
			}
		}
	}
	for in, want := range map[string]string{
		"proxy http://alice:s3cr3t@proxy:3128 refused": "proxy http://" + UserInfo + "proxy:3128 refused",
		"https://tok@cp.example.com/x":                 "https://" + UserInfo + "cp.example.com/x",
		"conn-1ccd38fcc9f3ab1a":                        "conn-1ccd38fcc9f3ab1a",
		"sha256 " + strings.Repeat("ab12", 16):         "sha256 " + strings.Repeat("ab12", 16),
		"mail me at a@b.example":                       "mail me at a@b.example",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriter(t *testing.T) {
	tok, _ := protocol.NewToken(nil)
	var b bytes.Buffer
	w := Writer(&b)
	msg := "level=INFO msg=x token=" + protocol.FormatToken(tok) + "\n"
	if n, err := w.Write([]byte(msg)); err != nil || n != len(msg) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if strings.Contains(b.String(), tok[:5]) {
		t.Errorf("Writer let the token through: %q", b.String())
	}
}

// Thorough keeps what is not a secret: people need the rest.
func TestThoroughKeeps(t *testing.T) {
	for _, in := range []string{
		`{"state": "online", "connector_id": "conn-1ccd38fcc9f3ab1a", "reason": "enter the enrolment token", "cert_not_after": "2026-12-05T14:05:08Z"}`,
		"control_plane_url: https://cp.example.com:8443\nconnector_name: dc1\ncontrol_plane_ca_file: /config/ca.pem\n",
		"[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n",
		"session 3fa2c9d1e0b4a5f6c7d8e9f0 ended: internationalization target_closed",
		"sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"proxy_url: http://proxy.internal:3128",
		"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
	} {
		out, n := Thorough([]byte(in))
		if n != 0 || string(out) != in {
			t.Errorf("Redact(%q) = %q (%d redactions), want it unchanged", in, out, n)
		}
	}
}
