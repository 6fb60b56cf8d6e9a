package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Component is a non-Debian part of the image (our own Go binaries).
type Component struct {
	Name    string
	Version string
	PURL    string // e.g. pkg:golang/github.com/vaultpam/appliance@v0.1.0
}

// Config says what the document describes.
type Config struct {
	// Name of the described image, e.g. "vaultpam-connector". Required.
	Name string
	// Version of the image, e.g. "0.1.0". Required.
	Version string
	// Created is the document's creation time; use SOURCE_DATE_EPOCH so
	// that the same inputs give the same bytes. Required (non-zero).
	Created time.Time
	// Distro is the purl distro qualifier ("debian-12"); empty means
	// guessed from base-files (DebianRelease).
	Distro string
	// Tool names the generator in creationInfo, e.g. "vaultpam-cosign-0.1.0".
	Tool string
	// Components are added beside the Debian packages.
	Components []Component
}

// Validate returns every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("sbom: name is empty"))
	}
	if c.Version == "" {
		errs = append(errs, errors.New("sbom: version is empty"))
	}
	if c.Created.IsZero() {
		errs = append(errs, errors.New("sbom: creation time is not set (set SOURCE_DATE_EPOCH)"))
	}
	return errors.Join(errs...)
}

type document struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      creationInfo   `json:"creationInfo"`
	Packages          []spdxPackage  `json:"packages"`
	Relationships     []relationship `json:"relationships"`
}

type creationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name                  string        `json:"name"`
	SPDXID                string        `json:"SPDXID"`
	VersionInfo           string        `json:"versionInfo"`
	Supplier              string        `json:"supplier,omitempty"`
	DownloadLocation      string        `json:"downloadLocation"`
	FilesAnalyzed         bool          `json:"filesAnalyzed"`
	Homepage              string        `json:"homepage,omitempty"`
	SourceInfo            string        `json:"sourceInfo,omitempty"`
	LicenseConcluded      string        `json:"licenseConcluded"`
	LicenseDeclared       string        `json:"licenseDeclared"`
	CopyrightText         string        `json:"copyrightText"`
	ExternalRefs          []externalRef `json:"externalRefs,omitempty"`
	PrimaryPackagePurpose string        `json:"primaryPackagePurpose,omitempty"`
}

type externalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type relationship struct {
	SPDXElementID      string `json:"spdxElementId"`
	RelationshipType   string `json:"relationshipType"`
	RelatedSPDXElement string `json:"relatedSpdxElement"`
}

const noAssertion = "NOASSERTION"

// SPDX returns the SPDX 2.3 JSON document for the image: one package for
// the image itself, which CONTAINS every Debian package and component. The
// same inputs give the same bytes.
func SPDX(pkgs []Package, cfg Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	distro := cfg.Distro
	if distro == "" {
		distro = DebianRelease(pkgs)
	}
	ids := idSet{}
	rootID := ids.make("SPDXRef-Package-" + cfg.Name)
	doc := document{
		SPDXVersion: "SPDX-2.3",
		DataLicense: "CC0-1.0",
		SPDXID:      "SPDXRef-DOCUMENT",
		Name:        cfg.Name + "-" + cfg.Version,
		CreationInfo: creationInfo{
			Created:  cfg.Created.UTC().Format(time.RFC3339),
			Creators: []string{"Organization: VaultPAM"},
		},
		Relationships: []relationship{{"SPDXRef-DOCUMENT", "DESCRIBES", rootID}},
	}
	if cfg.Tool != "" {
		doc.CreationInfo.Creators = append(doc.CreationInfo.Creators, "Tool: "+cfg.Tool)
	}
	doc.Packages = append(doc.Packages, spdxPackage{
		Name: cfg.Name, SPDXID: rootID, VersionInfo: cfg.Version,
		Supplier: "Organization: VaultPAM", DownloadLocation: noAssertion,
		LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
		PrimaryPackagePurpose: "OPERATING-SYSTEM",
	})
	for _, c := range cfg.Components {
		id := ids.make("SPDXRef-Package-" + c.Name)
		sp := spdxPackage{
			Name: c.Name, SPDXID: id, VersionInfo: c.Version,
			Supplier: "Organization: VaultPAM", DownloadLocation: noAssertion,
			LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
			PrimaryPackagePurpose: "APPLICATION",
		}
		if c.PURL != "" {
			sp.ExternalRefs = []externalRef{{"PACKAGE-MANAGER", "purl", c.PURL}}
		}
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, relationship{rootID, "CONTAINS", id})
	}
	for _, p := range pkgs {
		id := ids.make("SPDXRef-Package-deb-" + p.Name + "-" + p.Architecture)
		sp := spdxPackage{
			Name: p.Name, SPDXID: id, VersionInfo: p.Version,
			DownloadLocation: noAssertion,
			LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
			ExternalRefs: []externalRef{{"PACKAGE-MANAGER", "purl", DebPURL(p, distro)}},
		}
		if p.Maintainer != "" {
			sp.Supplier = supplier(p.Maintainer)
		}
		if strings.HasPrefix(p.Homepage, "http://") || strings.HasPrefix(p.Homepage, "https://") {
			sp.Homepage = p.Homepage
		}
		sp.SourceInfo = fmt.Sprintf("built package from: %s %s", p.Source, p.SourceVersion)
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, relationship{rootID, "CONTAINS", id})
	}
	// The namespace must be unique per document; deriving it from the
	// content keeps the output reproducible.
	body, err := json.Marshal(doc.Packages)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	doc.DocumentNamespace = fmt.Sprintf("https://spdx.org/spdxdocs/%s-%s-%s", cfg.Name, cfg.Version, hex.EncodeToString(sum[:8]))
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // keep '&' in purls readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encoding SPDX: %w", err)
	}
	return out.Bytes(), nil
}

// supplier turns a Debian Maintainer field into an SPDX supplier: teams
// (names with Maintainers, Team, Developers, Group or a mailing list
// address) are organizations, others persons.
func supplier(m string) string {
	lower := strings.ToLower(m)
	for _, w := range []string{"maintainers", "team", "developers", "group", "@lists.", "@alioth-lists."} {
		if strings.Contains(lower, w) {
			return "Organization: " + maintainerToSPDX(m)
		}
	}
	return "Person: " + maintainerToSPDX(m)
}

// maintainerToSPDX turns "Name <mail>" into SPDX's "Name (mail)".
func maintainerToSPDX(m string) string {
	name, mail, ok := strings.Cut(m, "<")
	if !ok {
		return strings.TrimSpace(m)
	}
	return strings.TrimSpace(name) + " (" + strings.TrimSuffix(strings.TrimSpace(mail), ">") + ")"
}

// idSet hands out unique SPDX identifiers (letters, digits, '.', '-').
type idSet map[string]bool

func (s idSet) make(base string) string {
	var b strings.Builder
	for _, r := range base {
		if r < 0x80 && (r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	id := b.String()
	for i := 2; s[id]; i++ {
		id = fmt.Sprintf("%s-%d", b.String(), i)
	}
	s[id] = true
	return id
}
