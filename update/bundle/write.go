package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"
)

// Source is where Write takes a part from.
type Source struct {
	Name string // PartRoot, PartVerity or PartUKI
	Path string
}

// WriteFile writes a bundle to out from the part files: it hashes each
// part, fills in m.Parts and writes manifest and parts. The other fields of
// m are the caller's. It returns the manifest as written and its digest
// (what the signed update metadata must carry). The file is written in
// place; callers write to a temporary name and rename.
func WriteFile(out string, m Manifest, parts []Source) (*Manifest, string, error) {
	m.Format, m.Compatible = Format, Compatible
	m.Parts = nil
	if len(parts) != len(PartOrder) {
		return nil, "", fmt.Errorf("bundle: want %d parts, got %d", len(PartOrder), len(parts))
	}
	for i, s := range parts {
		if s.Name != PartOrder[i] {
			return nil, "", fmt.Errorf("bundle: part %d is %q, want %q", i+1, s.Name, PartOrder[i])
		}
		size, sum, err := hashFile(s.Path)
		if err != nil {
			return nil, "", fmt.Errorf("bundle: %s: %w", s.Name, err)
		}
		m.Parts = append(m.Parts, Part{Name: s.Name, Size: size, SHA256: sum})
	}
	if err := m.Validate(); err != nil {
		return nil, "", fmt.Errorf("bundle manifest: %w", err)
	}
	mb, err := m.Encode()
	if err != nil {
		return nil, "", err
	}
	f, err := os.Create(out)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	mtime := time.Unix(m.SourceDateEpoch, 0).UTC()
	tw := tar.NewWriter(f)
	header := func(name string, size int64) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: mtime, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(header(ManifestName, int64(len(mb)))); err != nil {
		return nil, "", err
	}
	if _, err := tw.Write(mb); err != nil {
		return nil, "", err
	}
	for i, s := range parts {
		if err := tw.WriteHeader(header(s.Name, m.Parts[i].Size)); err != nil {
			return nil, "", err
		}
		in, err := os.Open(s.Path)
		if err != nil {
			return nil, "", err
		}
		// The part is hashed again while it is copied: a file changed
		// between the two reads makes a bundle that says what it holds.
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(tw, h), in)
		in.Close()
		if err != nil {
			return nil, "", fmt.Errorf("bundle: writing %s: %w", s.Name, err)
		}
		if n != m.Parts[i].Size || hex.EncodeToString(h.Sum(nil)) != m.Parts[i].SHA256 {
			return nil, "", fmt.Errorf("bundle: %s changed while the bundle was written", s.Path)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	if err := f.Sync(); err != nil {
		return nil, "", err
	}
	return &m, Digest(mb), f.Close()
}

func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
