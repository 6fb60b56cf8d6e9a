package signing

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// Digest is the SHA-256 of a file's content and its length.
type Digest struct {
	Sum  []byte // 32 bytes
	Size int64
}

// Hex returns the digest as lowercase hex, as sha256sum prints it.
func (d Digest) Hex() string { return hex.EncodeToString(d.Sum) }

// String returns "sha256:<hex>".
func (d Digest) String() string { return "sha256:" + d.Hex() }

// DigestReader hashes r to its end with io.Copy; memory use is constant
// whatever the length.
func DigestReader(r io.Reader) (Digest, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return Digest{}, err
	}
	return Digest{Sum: h.Sum(nil), Size: n}, nil
}

// DigestFile hashes the file at path as a stream.
func DigestFile(path string) (Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Digest{}, fmt.Errorf("hashing: %w", err)
	}
	defer f.Close()
	d, err := DigestReader(f)
	if err != nil {
		return Digest{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	return d, nil
}
