package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vaultpam/appliance/connector/atomicfile"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// PasswordEnv is the environment variable that holds the password of an
// encrypted cosign private key, the same one the cosign CLI reads.
const PasswordEnv = "COSIGN_PASSWORD"

// Default file names of a key pair, as `cosign generate-key-pair` writes them.
const (
	PrivateKeyFile = "cosign.key"
	PublicKeyFile  = "cosign.pub"
)

// ErrWrongPassword means the private key could not be decrypted with the
// password given (COSIGN_PASSWORD).
var ErrWrongPassword = errors.New("wrong password for the private key")

// ErrNoPassword means COSIGN_PASSWORD is not set.
var ErrNoPassword = errors.New(PasswordEnv + " is not set")

// PasswordFunc returns the password of a private key. It is called at most
// once per key load or generation. The returned slice may be zeroed by the
// caller after use.
type PasswordFunc func() ([]byte, error)

// EnvPassword returns a PasswordFunc that reads COSIGN_PASSWORD through
// lookup (os.LookupEnv when nil). Set but empty means the empty password,
// as with cosign; unset is ErrNoPassword.
func EnvPassword(lookup func(string) (string, bool)) PasswordFunc {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return func() ([]byte, error) {
		v, ok := lookup(PasswordEnv)
		if !ok {
			return nil, ErrNoPassword
		}
		return []byte(v), nil
	}
}

// StaticPassword returns a PasswordFunc that always returns p.
func StaticPassword(p []byte) PasswordFunc {
	return func() ([]byte, error) { return append([]byte(nil), p...), nil }
}

// KeyPair is a PEM-encoded cosign key pair: the private key encrypted in
// cosign's format (scrypt + secretbox, PEM type "ENCRYPTED SIGSTORE PRIVATE
// KEY"), and the public key as PKIX "PUBLIC KEY".
type KeyPair struct {
	PrivatePEM []byte
	PublicPEM  []byte
}

// GenerateKeyPair makes a new ECDSA P-256 key pair and encrypts the private
// key with the password from pw (nil means the empty password). The result
// is readable by `cosign sign-blob --key` and `cosign verify-blob --key`.
func GenerateKeyPair(pw PasswordFunc) (*KeyPair, error) {
	pf := func(bool) ([]byte, error) { return []byte{}, nil }
	if pw != nil {
		pf = func(bool) ([]byte, error) { return pw() }
	}
	kb, err := cosign.GenerateKeyPair(pf)
	if err != nil {
		return nil, fmt.Errorf("generating key pair: %w", err)
	}
	return &KeyPair{PrivatePEM: kb.PrivateBytes, PublicPEM: kb.PublicBytes}, nil
}

// WriteKeyPair writes kp as dir/cosign.key (0600) and dir/cosign.pub (0644).
// It refuses to overwrite an existing private key.
func WriteKeyPair(dir string, kp *KeyPair) error {
	priv := filepath.Join(dir, PrivateKeyFile)
	f, err := os.OpenFile(priv, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing private key: %w", err)
	}
	if _, err := f.Write(kp.PrivatePEM); err != nil {
		f.Close()
		return fmt.Errorf("writing private key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing private key: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, PublicKeyFile), kp.PublicPEM, 0o644); err != nil {
		return fmt.Errorf("writing public key: %w", err)
	}
	return nil
}

// loadPrivateKeyFile reads and decrypts a cosign private key file.
func loadPrivateKeyFile(path string, pw PasswordFunc) (signature.SignerVerifier, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("private key %s is not PEM", path)
	}
	if block.Type != cosign.CosignPrivateKeyPemType && block.Type != cosign.SigstorePrivateKeyPemType {
		return nil, fmt.Errorf("private key %s has PEM type %q, want an encrypted cosign key (cosign generate-key-pair)", path, block.Type)
	}
	if pw == nil {
		pw = EnvPassword(nil)
	}
	pass, err := pw()
	if err != nil {
		return nil, fmt.Errorf("password for %s: %w", path, err)
	}
	defer clear(pass)
	sv, err := cosign.LoadPrivateKey(raw, pass, nil)
	if err != nil {
		if strings.Contains(err.Error(), "decrypt") {
			return nil, fmt.Errorf("private key %s: %w", path, ErrWrongPassword)
		}
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return sv, nil
}

// ParsePublicKey parses a PEM public key (cosign.pub). Only ECDSA P-256 is
// accepted, the algorithm our signatures use.
func ParsePublicKey(pemBytes []byte) (*ecdsa.PublicKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("public key is %T, want ECDSA P-256", pub)
	}
	return ec, nil
}

// LoadPublicKey reads and parses a PEM public key file.
func LoadPublicKey(path string) (*ecdsa.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading public key: %w", err)
	}
	pub, err := ParsePublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// KeyHint is the sigstore bundle's public-key hint: base64 of the SHA-256
// of the PKIX-encoded public key (what cosign writes).
func KeyHint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}
