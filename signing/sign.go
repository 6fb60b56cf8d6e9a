package signing

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"fmt"

	"github.com/vaultpam/appliance/connector/atomicfile"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// Suffixes of the files written next to a signed file.
const (
	SigSuffix    = ".sig"
	BundleSuffix = ".sigstore.json"
)

// Signer signs SHA-256 digests with a cosign-compatible key. It is safe for
// concurrent use if the underlying SignerVerifier is.
type Signer struct {
	sv   signature.SignerVerifier
	pub  crypto.PublicKey
	hint string
}

// NewSigner wraps a SignerVerifier (from LoadSigner). It fetches the public
// key once (for a KMS key that is a call to the KMS).
func NewSigner(ctx context.Context, sv signature.SignerVerifier) (*Signer, error) {
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading the signing key's public key: %w", err)
	}
	hint, err := KeyHint(pub)
	if err != nil {
		return nil, err
	}
	return &Signer{sv: sv, pub: pub, hint: hint}, nil
}

// PublicKey returns the public key matching the signing key.
func (s *Signer) PublicKey() crypto.PublicKey { return s.pub }

// PublicKeyPEM returns the public key as PEM, the content of cosign.pub.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	return cryptoutils.MarshalPublicKeyToPEM(s.pub)
}

// Signature is a signature over one file's SHA-256 digest.
type Signature struct {
	Digest  Digest
	Sig     []byte // ASN.1 DER for ECDSA keys
	KeyHint string // base64 SHA-256 of the signer's PKIX public key
}

// Base64 returns the content of the .sig file: the base64 signature, no
// newline, as `cosign sign-blob --output-signature` writes it.
func (s *Signature) Base64() []byte {
	return []byte(base64.StdEncoding.EncodeToString(s.Sig))
}

// SignDigest signs a precomputed SHA-256 digest and checks the result
// against the public key before returning it.
func (s *Signer) SignDigest(ctx context.Context, d Digest) (*Signature, error) {
	if len(d.Sum) != crypto.SHA256.Size() {
		return nil, fmt.Errorf("digest is %d bytes, want a SHA-256 digest", len(d.Sum))
	}
	sig, err := s.sv.SignMessage(bytes.NewReader(nil),
		options.WithDigest(d.Sum), options.WithCryptoSignerOpts(crypto.SHA256), options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", d, err)
	}
	if err := verifyDigestSig(s.pub, d.Sum, sig); err != nil {
		return nil, fmt.Errorf("the key produced a signature that does not verify: %w", err)
	}
	return &Signature{Digest: d, Sig: sig, KeyHint: s.hint}, nil
}

// SignFile hashes the file at path as a stream and signs the digest.
func (s *Signer) SignFile(ctx context.Context, path string) (*Signature, error) {
	d, err := DigestFile(path)
	if err != nil {
		return nil, err
	}
	return s.SignDigest(ctx, d)
}

// WriteSignatureFiles writes path.sig and path.sigstore.json for sig.
func WriteSignatureFiles(path string, sig *Signature) error {
	if err := atomicfile.WriteFile(path+SigSuffix, sig.Base64(), 0o644); err != nil {
		return fmt.Errorf("writing signature: %w", err)
	}
	b, err := sig.Bundle()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path+BundleSuffix, b, 0o644); err != nil {
		return fmt.Errorf("writing bundle: %w", err)
	}
	return nil
}
