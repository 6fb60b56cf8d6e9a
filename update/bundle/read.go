package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ErrDamaged is wrapped by every error that means the bundle's bytes are
// not what its signed manifest says (a flipped byte, a truncated or
// rearranged file). Retrying with the same file cannot help.
var ErrDamaged = errors.New("update bundle is damaged")

// Reader reads a bundle from a stream, checking it as it goes. Create it
// with NewReader; call Next for each part in order, read each part to its
// end (the digest is checked when the part's last byte has been read, and
// a mismatch is the error of that Read), then Close to check nothing
// follows.
type Reader struct {
	tr       *tar.Reader
	Manifest Manifest
	next     int
	cur      *partReader
}

// NewReader reads and checks the manifest. wantDigest is the manifest's
// SHA-256 from the signed update metadata; "" skips that check (only for
// tools that show a bundle's content, never before installing).
func NewReader(r io.Reader, wantDigest string) (*Reader, error) {
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("%w: no manifest: %v", ErrDamaged, err)
	}
	if h.Name != ManifestName || h.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("%w: the first member is %q, want %s", ErrDamaged, h.Name, ManifestName)
	}
	if h.Size > MaxManifest {
		return nil, fmt.Errorf("%w: %s is %d bytes, at most %d", ErrDamaged, ManifestName, h.Size, MaxManifest)
	}
	mb, err := io.ReadAll(io.LimitReader(tr, MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrDamaged, ManifestName, err)
	}
	if got := Digest(mb); wantDigest != "" && got != wantDigest {
		return nil, fmt.Errorf("%w: its manifest has sha256 %s, the signed update metadata says %s", ErrDamaged, got, wantDigest)
	}
	b := &Reader{tr: tr}
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b.Manifest); err != nil {
		return nil, fmt.Errorf("%w: %s does not decode: %v", ErrDamaged, ManifestName, err)
	}
	if err := b.Manifest.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return b, nil
}

// Next moves to the next part and returns it with a reader of its bytes.
// The previous part must have been read to its end.
func (b *Reader) Next() (Part, io.Reader, error) {
	if b.cur != nil && !b.cur.done {
		return Part{}, nil, fmt.Errorf("bundle: part %s was not read to its end", b.cur.part.Name)
	}
	if b.next >= len(b.Manifest.Parts) {
		return Part{}, nil, io.EOF
	}
	want := b.Manifest.Parts[b.next]
	b.next++
	h, err := b.tr.Next()
	if err != nil {
		return Part{}, nil, fmt.Errorf("%w: part %s is missing: %v", ErrDamaged, want.Name, err)
	}
	if h.Name != want.Name || h.Typeflag != tar.TypeReg {
		return Part{}, nil, fmt.Errorf("%w: member %q where the manifest has %s", ErrDamaged, h.Name, want.Name)
	}
	if h.Size != want.Size {
		return Part{}, nil, fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrDamaged, want.Name, h.Size, want.Size)
	}
	b.cur = &partReader{r: b.tr, part: want, h: sha256.New(), left: want.Size}
	return want, b.cur, nil
}

// Close checks that every part was read and nothing follows the last one.
func (b *Reader) Close() error {
	if b.next < len(b.Manifest.Parts) || (b.cur != nil && !b.cur.done) {
		return errors.New("bundle: closed before every part was read")
	}
	if h, err := b.tr.Next(); err != io.EOF {
		name := ""
		if h != nil {
			name = h.Name
		}
		return fmt.Errorf("%w: unexpected member %q after the last part (%v)", ErrDamaged, name, err)
	}
	return nil
}

type partReader struct {
	r    io.Reader
	part Part
	h    hash.Hash
	left int64
	done bool
}

func (p *partReader) Read(b []byte) (int, error) {
	if p.done {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.r.Read(b)
	p.h.Write(b[:n])
	p.left -= int64(n)
	if p.left == 0 {
		p.done = true
		if got := hex.EncodeToString(p.h.Sum(nil)); got != p.part.SHA256 {
			return n, fmt.Errorf("%w: %s has sha256 %s, the manifest says %s", ErrDamaged, p.part.Name, got, p.part.SHA256)
		}
		return n, io.EOF
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return n, fmt.Errorf("%w: %s ends %d bytes early", ErrDamaged, p.part.Name, p.left)
	}
	return n, err
}

// Check reads a whole bundle and checks it: the manifest against
// wantDigest, every part against the manifest, nothing extra. It returns
// the manifest. Installing runs it over the whole file before writing
// anything, so a damaged bundle is refused before a byte reaches a slot.
func Check(r io.Reader, wantDigest string) (*Manifest, error) {
	b, err := NewReader(r, wantDigest)
	if err != nil {
		return nil, err
	}
	for {
		_, pr, err := b.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(io.Discard, pr); err != nil {
			return nil, err
		}
	}
	if err := b.Close(); err != nil {
		return nil, err
	}
	return &b.Manifest, nil
}
