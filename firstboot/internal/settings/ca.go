package settings

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vaultpam/appliance/connector/atomicfile"
)

// MaxCABundle bounds a CA bundle (the OVF property, a trust request, the
// file on /config).
const MaxCABundle = 64 << 10

// ParseCABundle reads the certificates of a private CA bundle, given as PEM
// or as base64 of PEM (what fits an OVF property in the vSphere UI, which
// keeps no line breaks). It refuses anything but certificates — a private
// key above all, so a pasted key file never lands on /config — and an
// empty bundle. Messages name the problem and what is expected.
func ParseCABundle(v []byte) ([]*x509.Certificate, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return nil, errors.New("CA certificate: empty; expected PEM (-----BEGIN CERTIFICATE-----) or its base64")
	}
	if len(v) > MaxCABundle {
		return nil, fmt.Errorf("CA certificate: %d bytes, more than the %d a CA bundle may have", len(v), MaxCABundle)
	}
	if !bytes.Contains(v, []byte("-----BEGIN")) {
		// base64 of the PEM text, with or without line breaks or spaces.
		dec, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(v)), ""))
		if err != nil || !bytes.Contains(dec, []byte("-----BEGIN")) {
			return nil, errors.New("CA certificate: neither PEM nor base64 of PEM; expected the CA's certificate as -----BEGIN CERTIFICATE----- … or that text base64-encoded")
		}
		v = dec
	}
	v = normalizePEM(v)
	var certs []*x509.Certificate
	rest := v
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			if strings.Contains(b.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("CA certificate: block %d is a private key (%s); give only the CA's certificate, never a key", n, b.Type)
			}
			return nil, fmt.Errorf("CA certificate: block %d is %q, not CERTIFICATE; give only certificates", n, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA certificate: block %d does not parse: %v", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("CA certificate: no PEM certificate found; expected -----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----")
	}
	if len(bytes.TrimSpace(rest)) > 0 && bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, errors.New("CA certificate: a PEM block does not end; check that the text is complete")
	}
	return certs, nil
}

var pemBlock = regexp.MustCompile(`(?s)-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END ([A-Z0-9 ]+)-----`)

// normalizePEM rewrites PEM blocks whose line breaks became spaces (an XML
// attribute, as in the OVF environment, turns them into spaces) into
// proper PEM. Headers inside a block are not supported; certificates have
// none.
func normalizePEM(v []byte) []byte {
	return pemBlock.ReplaceAllFunc(v, func(m []byte) []byte {
		sub := pemBlock.FindSubmatch(m)
		body := strings.Join(strings.Fields(string(sub[2])), "")
		var b strings.Builder
		fmt.Fprintf(&b, "-----BEGIN %s-----\n", sub[1])
		for len(body) > 64 {
			b.WriteString(body[:64] + "\n")
			body = body[64:]
		}
		if body != "" {
			b.WriteString(body + "\n")
		}
		fmt.Fprintf(&b, "-----END %s-----", sub[3])
		return []byte(b.String())
	})
}

// CheckCABundle validates an optional CA bundle ("" = none given).
func CheckCABundle(v string) string {
	if strings.TrimSpace(v) == "" {
		return ""
	}
	if _, err := ParseCABundle([]byte(v)); err != nil {
		return err.Error()
	}
	return ""
}

// Fingerprint is the SHA-256 of a certificate's DER, as AB:CD:… .
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// AddCA adds certs to the CA bundle under root (/config/ca.pem), keeping
// the certificates already there and each certificate once, atomically,
// and points connector.yaml's control_plane_ca_file at it when
// connector.yaml exists. It returns how many certificates were new.
func AddCA(root string, certs []*x509.Certificate) (int, error) {
	path := filepath.Join(root, CAFile)
	var have []*x509.Certificate
	old, err := os.ReadFile(path)
	switch {
	case err == nil && len(bytes.TrimSpace(old)) > 0:
		if have, err = ParseCABundle(old); err != nil {
			return 0, fmt.Errorf("/%s holds something else than certificates (%v); hint: fix or remove it by hand", CAFile, err)
		}
	case err != nil && !os.IsNotExist(err):
		return 0, fmt.Errorf("reading /%s: %w", CAFile, err)
	}
	seen := map[string]bool{}
	var out bytes.Buffer
	for _, c := range have {
		seen[Fingerprint(c)] = true
		pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	added := 0
	for _, c := range certs {
		if seen[Fingerprint(c)] {
			continue
		}
		seen[Fingerprint(c)] = true
		fmt.Fprintf(&out, "# %s\n# SHA-256 %s\n", c.Subject, Fingerprint(c))
		pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		added++
	}
	if out.Len() > MaxCABundle {
		return 0, fmt.Errorf("the CA bundle would be %d bytes, more than %d; hint: remove certificates no longer needed from /%s", out.Len(), MaxCABundle, CAFile)
	}
	if added > 0 {
		if err := atomicfile.Write(path, out.Bytes(), atomicfile.Options{Perm: 0o644, MkdirAll: true}); err != nil {
			return 0, err
		}
	}
	cy := filepath.Join(root, ConnectorYAML)
	if b, err := os.ReadFile(cy); err == nil {
		body, err := pointCAFile(b, "/"+CAFile)
		if err != nil {
			return added, err
		}
		if !bytes.Equal(body, b) {
			if err := atomicfile.Write(cy, body, atomicfile.Options{Perm: 0o644}); err != nil {
				return added, err
			}
		}
	}
	return added, nil
}
