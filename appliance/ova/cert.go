package ova

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"regexp"
)

// Problems VerifyCert finds in a VMware .cert. Each error wraps exactly one.
var (
	// ErrCertMalformed: the .cert is not "SHA256(NAME.mf)= hex" followed by
	// PEM certificates, or it signs another file.
	ErrCertMalformed = errors.New("malformed .cert")
	// ErrManifestChanged: the signature was made by the certificate's key
	// but over other manifest bytes: the .mf was changed after signing.
	ErrManifestChanged = errors.New("the manifest was changed after signing")
	// ErrCertWrongKey: the signature was not made with the certificate's
	// key (another key signed, or the signature is damaged).
	ErrCertWrongKey = errors.New("the .cert signature was not made with its certificate's key")
)

var certSigLine = regexp.MustCompile(`^SHA(1|256|384|512)\(([^()]+)\)= ([0-9A-Fa-f]+)$`)

// VerifyCert checks a VMware .cert against the manifest bytes mf (the
// member named mfName): the signature line names mfName, the signature is
// RSA PKCS#1 v1.5 over SHA-256 of mf by the first certificate's key, and
// every certificate was issued by the next one. It returns the leaf. It
// does not look at the clock or at a trust store: vSphere decides trust;
// callers show the leaf's subject and validity.
func VerifyCert(mf, cert []byte, mfName string) (*x509.Certificate, error) {
	chain, err := verifyCert(mf, cert, mfName)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

func verifyCert(mf, cert []byte, mfName string) ([]*x509.Certificate, error) {
	line, rest, ok := bytes.Cut(cert, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no certificate after the signature line", ErrCertMalformed)
	}
	m := certSigLine.FindSubmatch(bytes.TrimSuffix(line, []byte("\r")))
	if m == nil {
		return nil, fmt.Errorf("%w: first line %q: want SHA256(%s)= hex", ErrCertMalformed, abbrev(line), mfName)
	}
	if string(m[1]) != "256" {
		return nil, fmt.Errorf("%w: the signature uses SHA%s; vaultpam writes and checks SHA256 only", ErrCertMalformed, m[1])
	}
	if string(m[2]) != mfName {
		return nil, fmt.Errorf("%w: it signs %q, not this OVA's manifest %q", ErrCertMalformed, m[2], mfName)
	}
	sig, err := hex.DecodeString(string(m[3]))
	if err != nil {
		return nil, fmt.Errorf("%w: signature: odd number of hex digits", ErrCertMalformed)
	}
	chain, err := parseCertificates(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertMalformed, err)
	}
	leaf := chain[0]
	pub, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the certificate %s has an %s key; vSphere needs RSA", ErrCertMalformed, leaf.Subject, keyType(leaf.PublicKey))
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fmt.Errorf("%w: %w: certificate %d (%s) was not issued by certificate %d (%s)",
				ErrCertMalformed, ErrCertChain, i+1, chain[i].Subject, i+2, chain[i+1].Subject)
		}
	}
	d := sha256.Sum256(mf)
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig) == nil {
		return chain, nil
	}
	if signed, ok := signedDigest(pub, sig); ok {
		return nil, fmt.Errorf("%w: %s has sha256 %x, the signature by %s covers %x; do not import this OVA, download it again",
			ErrManifestChanged, mfName, d, leaf.Subject, signed)
	}
	return nil, fmt.Errorf("%w (%s): the .cert was replaced or damaged; do not import this OVA, download it again", ErrCertWrongKey, leaf.Subject)
}

// sha256DigestInfo is the DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2).
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// signedDigest opens sig with the public key (s^e mod n) and, when the
// result is a well-formed PKCS#1 v1.5 SHA-256 encoding, returns the digest
// it carries. A signature by another key opens to noise; one by this key
// over other bytes opens to a valid encoding of another digest. It tells
// "manifest changed" from "wrong key" apart; it is not a verification.
func signedDigest(pub *rsa.PublicKey, sig []byte) ([]byte, bool) {
	k := pub.Size()
	if len(sig) != k {
		return nil, false
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return nil, false
	}
	em := new(big.Int).Exp(s, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, k))
	ps := k - 3 - len(sha256DigestInfo) - sha256.Size
	if ps < 8 || em[0] != 0 || em[1] != 1 || em[2+ps] != 0 {
		return nil, false
	}
	for _, b := range em[2 : 2+ps] {
		if b != 0xff {
			return nil, false
		}
	}
	t := em[3+ps:]
	if !bytes.HasPrefix(t, sha256DigestInfo) {
		return nil, false
	}
	return t[len(sha256DigestInfo):], true
}

func abbrev(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
