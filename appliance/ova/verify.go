package ova

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// ErrArchive: the OVA's members do not match its manifest, or are not in
// the order vSphere expects (.ovf first, .cert right after .mf).
var ErrArchive = errors.New("ova does not match its manifest")

// Archive is what VerifyArchive found in an OVA.
type Archive struct {
	// Members in archive order.
	Members []string
	// ManifestName and CertName are "" when the OVA has no such member.
	ManifestName, CertName string
	// Chain is the .cert's certificates, leaf first; nil without a .cert.
	Chain []*x509.Certificate
}

// maxSmallMember bounds the .mf and .cert read into memory.
const maxSmallMember = 1 << 20

// VerifyArchive reads an OVA once, streaming: the .ovf comes first, every
// other member except the .mf and .cert is listed in the .mf with its
// SHA-256, and a .cert, when present, follows the .mf and verifies
// (VerifyCert). Without a .mf it only lists the members.
func VerifyArchive(r io.Reader) (*Archive, error) {
	a := &Archive{}
	sums := map[string]string{}
	var mf, cert []byte
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading the tar archive: %w", ErrArchive, err)
		}
		name := h.Name
		if len(a.Members) == 0 && !strings.HasSuffix(name, ".ovf") {
			return nil, fmt.Errorf("%w: the first member is %s; vSphere wants the .ovf first", ErrArchive, name)
		}
		a.Members = append(a.Members, name)
		switch {
		case strings.HasSuffix(name, ".mf"):
			if a.ManifestName != "" {
				return nil, fmt.Errorf("%w: two manifests, %s and %s", ErrArchive, a.ManifestName, name)
			}
			a.ManifestName = name
			if mf, err = readSmall(tr, name); err != nil {
				return nil, err
			}
		case strings.HasSuffix(name, ".cert"):
			if a.CertName != "" {
				return nil, fmt.Errorf("%w: two certificates, %s and %s", ErrArchive, a.CertName, name)
			}
			if prev := a.Members[len(a.Members)-2]; a.ManifestName == "" || prev != a.ManifestName {
				return nil, fmt.Errorf("%w: %s follows %s; it must come right after the .mf", ErrArchive, name, prev)
			}
			a.CertName = name
			if cert, err = readSmall(tr, name); err != nil {
				return nil, err
			}
		default:
			h := sha256.New()
			if _, err := io.Copy(h, tr); err != nil {
				return nil, fmt.Errorf("reading ova member %s: %w", name, err)
			}
			sums[name] = hex.EncodeToString(h.Sum(nil))
		}
	}
	if len(a.Members) == 0 {
		return nil, fmt.Errorf("%w: the archive is empty", ErrArchive)
	}
	if a.ManifestName == "" {
		return a, nil
	}
	entries, err := ParseManifest(bytes.NewReader(mf))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.ManifestName, err)
	}
	listed := map[string]bool{}
	var errs []error
	for _, e := range entries {
		listed[e.Name] = true
		got, ok := sums[e.Name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%w: %s lists %s, which is not in the archive", ErrArchive, a.ManifestName, e.Name))
		case got != e.SHA256:
			errs = append(errs, fmt.Errorf("%w: %s has sha256 %s, %s says %s", ErrArchive, e.Name, got, a.ManifestName, e.SHA256))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		if !listed[name] {
			errs = append(errs, fmt.Errorf("%w: %s is not listed in %s", ErrArchive, name, a.ManifestName))
		}
	}
	if a.CertName != "" {
		if a.Chain, err = verifyCert(mf, cert, a.ManifestName); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.CertName, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// VerifyArchiveFile is VerifyArchive on the OVA at path.
func VerifyArchiveFile(path string) (*Archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return VerifyArchive(f)
}

func readSmall(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSmallMember+1))
	if err != nil {
		return nil, fmt.Errorf("reading ova member %s: %w", name, err)
	}
	if len(b) > maxSmallMember {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrArchive, name, maxSmallMember)
	}
	return b, nil
}
