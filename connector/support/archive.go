package support

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
)

// ManifestName is the manifest's name in the archive (its first member).
const ManifestName = "manifest.json"

// FormatVersion is the bundle format in Manifest.Format.
const FormatVersion = 1

// maxUnpacked bounds what Unpack writes: a bundle is text, a few MiB.
const maxUnpacked = 256 << 20

// Part is one file of a bundle, already redacted.
type Part struct {
	Name string // slash-separated, relative: "journal/vaultpam-connector.log"
	Data []byte
}

// PartInfo describes a part in the manifest.
type PartInfo struct {
	Name   string `json:"name"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
	// Redactions is how many secrets were replaced in it.
	Redactions int `json:"redactions"`
	// Error says why the part is empty or partial (a command missing, a
	// file unreadable); the part then holds the same text.
	Error string `json:"error,omitempty"`
}

// Manifest is manifest.json: what the bundle holds and where it is from.
type Manifest struct {
	Format        int        `json:"format"`
	CreatedAt     time.Time  `json:"created_at"`
	ConnectorID   string     `json:"connector_id,omitempty"`
	ConnectorName string     `json:"connector_name,omitempty"`
	Version       string     `json:"version,omitempty"`
	Hostname      string     `json:"hostname,omitempty"`
	Parts         []PartInfo `json:"parts"`
}

// Bundle is a collected support bundle, before encryption.
type Bundle struct {
	Manifest Manifest
	Parts    []Part
}

// Archive writes the bundle as a tar.gz: manifest.json first, then the
// parts in order, every member 0600 and dated CreatedAt.
func (b *Bundle) Archive(w io.Writer) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	man, err := json.MarshalIndent(b.Manifest, "", "  ")
	if err != nil {
		return err
	}
	add := func(name string, data []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: b.Manifest.CreatedAt, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("archiving %s: %w", name, err)
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(ManifestName, append(man, '\n')); err != nil {
		return err
	}
	for _, p := range b.Parts {
		if err := add(p.Name, p.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// Encrypt archives the bundle and encrypts it with age to recipient, an
// X25519 public key ("age1…", from the control plane's hello_ack).
func (b *Bundle) Encrypt(recipient string) ([]byte, error) {
	r, err := age.ParseX25519Recipient(strings.TrimSpace(recipient))
	if err != nil {
		return nil, fmt.Errorf("support bundle recipient %q is not an age public key: %w", recipient, err)
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, r)
	if err != nil {
		return nil, fmt.Errorf("encrypting the support bundle: %w", err)
	}
	if err := b.Archive(w); err != nil {
		return nil, fmt.Errorf("archiving the support bundle: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypting the support bundle: %w", err)
	}
	return out.Bytes(), nil
}

// Open decrypts an encrypted bundle with id and reads it back.
func Open(ciphertext io.Reader, id age.Identity) (*Bundle, error) {
	r, err := age.Decrypt(ciphertext, id)
	if err != nil {
		return nil, fmt.Errorf("decrypting the support bundle: %w", err)
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("support bundle is not a tar.gz: %w", err)
	}
	tr := tar.NewReader(zr)
	b := &Bundle{}
	total := int64(0)
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the support bundle: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg || !safeName(hdr.Name) {
			return nil, fmt.Errorf("support bundle member %q: only plain files with relative names are allowed", hdr.Name)
		}
		if total += hdr.Size; total > maxUnpacked {
			return nil, fmt.Errorf("support bundle unpacks to more than %d bytes", maxUnpacked)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s from the support bundle: %w", hdr.Name, err)
		}
		if i == 0 {
			if hdr.Name != ManifestName {
				return nil, fmt.Errorf("support bundle starts with %q, not %s", hdr.Name, ManifestName)
			}
			if err := json.Unmarshal(data, &b.Manifest); err != nil {
				return nil, fmt.Errorf("support bundle manifest: %w", err)
			}
			continue
		}
		b.Parts = append(b.Parts, Part{Name: hdr.Name, Data: data})
	}
	return b, nil
}

// Unpack writes the manifest and the parts under dir (created 0700 if
// missing; it must not hold files of the same names), files 0600.
func (b *Bundle) Unpack(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	man, _ := json.MarshalIndent(b.Manifest, "", "  ")
	write := func(name string, data []byte) error {
		if !safeName(name) {
			return fmt.Errorf("refusing to write %q outside %s", name, dir)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("unpacking %s: %w", name, err)
		}
		_, err = f.Write(data)
		return errors.Join(err, f.Close())
	}
	if err := write(ManifestName, append(man, '\n')); err != nil {
		return err
	}
	for _, p := range b.Parts {
		if err := write(p.Name, p.Data); err != nil {
			return err
		}
	}
	return nil
}

// safeName accepts clean, relative, slash-separated names.
func safeName(n string) bool {
	return n != "" && !strings.HasPrefix(n, "/") && path.Clean(n) == n && n != ".." && !strings.HasPrefix(n, "../") && !strings.Contains(n, "\\")
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
