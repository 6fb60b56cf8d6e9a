package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Verification failures. Verify functions wrap exactly one of them, so
// callers can branch with errors.Is; the message says which file and what
// to do.
var (
	// ErrDigestMismatch: the file's SHA-256 differs from the signed digest
	// (the file was changed or corrupted after signing).
	ErrDigestMismatch = errors.New("file does not match the signed digest")
	// ErrWrongKey: the signature is well-formed and covers this file's
	// digest but was not made by the given public key.
	ErrWrongKey = errors.New("signature was made with another key")
	// ErrBadSignature: the signature (or bundle) is truncated or garbled.
	ErrBadSignature = errors.New("signature is truncated or garbled")
	// ErrSignatureMismatch: a bare .sig does not verify; without a signed
	// digest to compare with, it cannot say whether the file changed or the
	// key is wrong.
	ErrSignatureMismatch = errors.New("signature does not match the file and key")
)

// verifyDigestSig checks sig over a SHA-256 digest. It returns
// ErrBadSignature for an ECDSA signature that is not valid DER and
// ErrSignatureMismatch when a well-formed signature does not verify.
func verifyDigestSig(pub crypto.PublicKey, digest, sig []byte) error {
	if ec, ok := pub.(*ecdsa.PublicKey); ok {
		if !wellFormedECDSA(sig) {
			return fmt.Errorf("%w: %d bytes are not an ASN.1 ECDSA signature", ErrBadSignature, len(sig))
		}
		if !ecdsa.VerifyASN1(ec, digest, sig) {
			return ErrSignatureMismatch
		}
		return nil
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return fmt.Errorf("loading verifier: %w", err)
	}
	if err := v.VerifySignature(bytes.NewReader(sig), nil, options.WithDigest(digest), options.WithCryptoSignerOpts(crypto.SHA256)); err != nil {
		return fmt.Errorf("%w: %v", ErrSignatureMismatch, err)
	}
	return nil
}

// wellFormedECDSA reports whether sig is exactly one DER SEQUENCE of two
// positive INTEGERs with nothing after it.
func wellFormedECDSA(sig []byte) bool {
	var inner cryptobyte.String
	in := cryptobyte.String(sig)
	var r, s []byte
	return in.ReadASN1(&inner, asn1.SEQUENCE) && in.Empty() &&
		inner.ReadASN1Integer(&r) && inner.ReadASN1Integer(&s) && inner.Empty()
}

// decodeSigFile decodes the content of a .sig file (base64, surrounding
// whitespace allowed).
func decodeSigFile(b64 []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b64))
	if s == "" {
		return nil, fmt.Errorf("%w: the .sig file is empty", ErrBadSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not valid base64: %v", ErrBadSignature, err)
	}
	return sig, nil
}

// VerifyOptions tune a verification. The zero value is ready to use.
type VerifyOptions struct {
	// Expected, when set, is a digest the caller already trusts for the
	// file (from a verified SHA256SUMS); it lets a failed check say whether
	// the file changed or the key is wrong.
	Expected *Digest
}

// VerifySig checks a cosign .sig (base64) for the file at path against pub,
// hashing the file as a stream. It is what `cosign verify-blob --key
// --signature` checks, without the transparency log.
func VerifySig(pub crypto.PublicKey, path string, sigB64 []byte, opts VerifyOptions) error {
	return verifySig(pub, path, path+SigSuffix, sigB64, opts)
}

// verifySig is VerifySig naming the signature sigName in messages.
func verifySig(pub crypto.PublicKey, path, sigName string, sigB64 []byte, opts VerifyOptions) error {
	sig, err := decodeSigFile(sigB64)
	if err != nil {
		return fmt.Errorf("%s: %w", sigName, err)
	}
	d, err := DigestFile(path)
	if err != nil {
		return err
	}
	if opts.Expected != nil && subtle.ConstantTimeCompare(opts.Expected.Sum, d.Sum) != 1 {
		return fmt.Errorf("%s: %w: it has %s, SHA256SUMS says %s; the file was changed or corrupted after signing (download it again)",
			path, ErrDigestMismatch, d, opts.Expected)
	}
	err = verifyDigestSig(pub, d.Sum, sig)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrSignatureMismatch) && opts.Expected != nil:
		return fmt.Errorf("%s: %w: the file matches SHA256SUMS but the signature is not from this public key", sigName, ErrWrongKey)
	case errors.Is(err, ErrSignatureMismatch):
		return fmt.Errorf("%s: %w: either %s was changed after signing or the signature was made with another key (check the file with sha256sum -c SHA256SUMS)",
			sigName, ErrSignatureMismatch, path)
	default:
		return fmt.Errorf("%s: %w", sigName, err)
	}
}

// VerifySigFile is VerifySig reading the signature from sigPath.
func VerifySigFile(pub crypto.PublicKey, path, sigPath string, opts VerifyOptions) error {
	b, err := os.ReadFile(sigPath)
	if err != nil {
		return fmt.Errorf("reading signature: %w", err)
	}
	return verifySig(pub, path, sigPath, b, opts)
}

// VerifyBundle checks a sigstore bundle (.sigstore.json) for the file at
// path against pub. The bundle carries the signed digest and a key hint, so
// a failure names the cause: ErrDigestMismatch, ErrWrongKey or
// ErrBadSignature.
func VerifyBundle(pub crypto.PublicKey, path string, bundleJSON []byte) error {
	return verifyBundle(pub, path, path+BundleSuffix, bundleJSON)
}

func verifyBundle(pub crypto.PublicKey, path, bundleName string, bundleJSON []byte) error {
	bs, err := ParseBundle(bundleJSON)
	if err != nil {
		return fmt.Errorf("%s: %w", bundleName, err)
	}
	d, err := DigestFile(path)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(bs.Digest.Sum, d.Sum) != 1 {
		return fmt.Errorf("%s: %w: it has %s, the bundle signed %s; the file was changed or corrupted after signing (download it again)",
			path, ErrDigestMismatch, d, bs.Digest)
	}
	hint, err := KeyHint(pub)
	if err != nil {
		return err
	}
	err = verifyDigestSig(pub, d.Sum, bs.Sig)
	switch {
	case err == nil:
		return nil
	case bs.KeyHint != "" && bs.KeyHint != hint:
		return fmt.Errorf("%s: %w: the bundle names key %s, the public key given is %s", bundleName, ErrWrongKey, bs.KeyHint, hint)
	case errors.Is(err, ErrSignatureMismatch) && bs.KeyHint == hint:
		return fmt.Errorf("%s: %w: the digest and key match but the signature bytes do not verify", bundleName, ErrBadSignature)
	case errors.Is(err, ErrSignatureMismatch):
		return fmt.Errorf("%s: %w: the digest matches but the signature is not from this public key", bundleName, ErrWrongKey)
	default:
		return fmt.Errorf("%s: %w", bundleName, err)
	}
}

// VerifyBundleFile is VerifyBundle reading the bundle from bundlePath.
func VerifyBundleFile(pub crypto.PublicKey, path, bundlePath string) error {
	b, err := os.ReadFile(bundlePath)
	if err != nil {
		return fmt.Errorf("reading bundle: %w", err)
	}
	return verifyBundle(pub, path, bundlePath, b)
}
