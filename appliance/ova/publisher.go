package ova

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// MinRSABits is the smallest publisher key vSphere accepts for signed OVFs.
const MinRSABits = 2048

// Problems with a publisher key or certificate. LoadPublisher and
// (*Publisher).Check wrap exactly one of them; the message names the file
// or the certificate, never the key's contents.
var (
	// ErrKeyEncrypted: the PEM private key is encrypted; the build cannot
	// prompt for a pass phrase.
	ErrKeyEncrypted = errors.New("publisher key is encrypted")
	// ErrKeyUnreadable: no PEM PKCS#1 or PKCS#8 private key in the file.
	ErrKeyUnreadable = errors.New("publisher key is not a PEM private key")
	// ErrKeyNotRSA: vSphere verifies OVF certificates with RSA only.
	ErrKeyNotRSA = errors.New("publisher key is not RSA")
	// ErrKeyTooSmall: an RSA key under MinRSABits.
	ErrKeyTooSmall = errors.New("publisher key is too small")
	// ErrKeyMismatch: the certificate's public key is not the private
	// key's.
	ErrKeyMismatch = errors.New("publisher key does not match the certificate")
	// ErrCertUnreadable: no PEM certificate, or one that does not parse.
	ErrCertUnreadable = errors.New("publisher certificate is not readable")
	// ErrCertChain: a certificate in the chain was not issued by the one
	// after it.
	ErrCertChain = errors.New("publisher certificate chain is out of order")
	// ErrCertExpired: the leaf's NotAfter has passed.
	ErrCertExpired = errors.New("publisher certificate has expired")
	// ErrCertNotYetValid: the leaf's NotBefore is in the future.
	ErrCertNotYetValid = errors.New("publisher certificate is not valid yet")
)

// Publisher signs an OVA's manifest as VMware's NAME.cert, so vSphere
// shows who published the appliance. The zero value is not usable.
type Publisher struct {
	// Signer holds the RSA private key (at least MinRSABits) whose public
	// key is Chain[0]'s. It may be an HSM or KMS signer; Sign is called
	// with crypto.SHA256 options, i.e. RSA PKCS#1 v1.5.
	Signer crypto.Signer
	// Chain is the leaf certificate first, then its intermediates, in
	// issuing order. It is written into the .cert as PEM.
	Chain []*x509.Certificate
}

// LoadPublisher reads an unencrypted PEM private key (PKCS#1 "RSA PRIVATE
// KEY" or PKCS#8 "PRIVATE KEY") and a PEM certificate file (leaf first, then
// intermediates) and checks that the key is RSA of at least MinRSABits and
// matches the leaf. It does not look at the clock; Check does.
func LoadPublisher(keyPath, certPath string) (*Publisher, error) {
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("reading publisher key: %w", err)
	}
	signer, err := parsePrivateKey(keyPath, keyPEM)
	clear(keyPEM)
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("reading publisher certificate: %w", err)
	}
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	p := &Publisher{Signer: signer, Chain: chain}
	if err := p.checkKey(); err != nil {
		return nil, fmt.Errorf("%s with %s: %w", keyPath, certPath, err)
	}
	return p, nil
}

// parsePrivateKey returns the first private key in the PEM data. Errors
// name the file and the key type, never any of its bytes.
func parsePrivateKey(path string, data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("%s: %w: want a -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY----- block", path, ErrKeyUnreadable)
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		defer clear(b.Bytes)
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, fmt.Errorf("%s: %w: the build cannot ask for its pass phrase; write a decrypted copy readable only by the build user (`openssl pkey -in ENCRYPTED.pem -out KEY.pem`, then chmod 600) and remove it afterwards", path, ErrKeyEncrypted)
		}
		var key any
		var err error
		switch b.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "OPENSSH PRIVATE KEY":
			return nil, fmt.Errorf("%s: %w: it is in OpenSSH format; convert a copy (`cp FILE key.pem && ssh-keygen -p -m PEM -f key.pem` rewrites key.pem in place) or use the PKCS#8 key your CA issued the certificate for", path, ErrKeyUnreadable)
		case "EC PRIVATE KEY":
			return nil, fmt.Errorf("%s: %w: it is an ECDSA key; vSphere needs an RSA code-signing key of at least %d bits", path, ErrKeyNotRSA, MinRSABits)
		default:
			return nil, fmt.Errorf("%s: %w: PEM type %q; want PRIVATE KEY (PKCS#8) or RSA PRIVATE KEY (PKCS#1)", path, ErrKeyUnreadable, b.Type)
		}
		if err != nil {
			// The parser's message is not shown: keep every byte of the key out of errors.
			return nil, fmt.Errorf("%s: %w: the %s block does not parse", path, ErrKeyUnreadable, b.Type)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey, ed25519.PrivateKey:
			return nil, fmt.Errorf("%s: %w: it is an %s key; vSphere needs an RSA code-signing key of at least %d bits", path, ErrKeyNotRSA, keyType(k), MinRSABits)
		default:
			return nil, fmt.Errorf("%s: %w: %T; vSphere needs an RSA key of at least %d bits", path, ErrKeyNotRSA, k, MinRSABits)
		}
	}
}

func keyType(k any) string {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *ecdsa.PrivateKey:
		return "ECDSA " + k.Curve.Params().Name
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PrivateKey, ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

// parseCertificates reads every CERTIFICATE block, in order.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			if strings.HasSuffix(b.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("%w: it contains a private key; give the certificate(s) only", ErrCertUnreadable)
			}
			return nil, fmt.Errorf("%w: PEM block %q; want CERTIFICATE blocks only", ErrCertUnreadable, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrCertUnreadable, len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: no -----BEGIN CERTIFICATE----- block", ErrCertUnreadable)
	}
	return chain, nil
}

// checkKey checks what does not depend on the clock: an RSA key of at least
// MinRSABits that is the leaf's, and a chain in issuing order.
func (p *Publisher) checkKey() error {
	if p.Signer == nil || len(p.Chain) == 0 {
		return errors.New("publisher: want a signer and at least one certificate")
	}
	pub, ok := p.Signer.Public().(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: it is an %s key; vSphere needs an RSA code-signing key of at least %d bits", ErrKeyNotRSA, keyType(p.Signer.Public()), MinRSABits)
	}
	if bits := pub.N.BitLen(); bits < MinRSABits {
		return fmt.Errorf("%w: RSA %d bits, vSphere needs at least %d; get a new code-signing certificate for an RSA key of 3072 bits (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072`)", ErrKeyTooSmall, bits, MinRSABits)
	}
	leaf := p.Chain[0]
	if !pub.Equal(leaf.PublicKey) {
		return fmt.Errorf("%w: the first certificate (%s, %s key) is for another key; give the certificate issued for this key, leaf first",
			ErrKeyMismatch, leaf.Subject, keyType(leaf.PublicKey))
	}
	for i := 0; i+1 < len(p.Chain); i++ {
		if err := p.Chain[i].CheckSignatureFrom(p.Chain[i+1]); err != nil {
			return fmt.Errorf("%w: certificate %d (%s) was not issued by certificate %d (%s); list the leaf first, then each issuer",
				ErrCertChain, i+1, p.Chain[i].Subject, i+2, p.Chain[i+1].Subject)
		}
	}
	return nil
}

// Check runs LoadPublisher's checks and checks that the leaf is valid at
// now. It returns warnings for what vSphere accepts but flags: a leaf
// without the codeSigning extended key usage.
func (p *Publisher) Check(now time.Time) (warnings []string, err error) {
	if err := p.checkKey(); err != nil {
		return nil, err
	}
	leaf := p.Chain[0]
	const day = "2006-01-02 15:04:05 MST"
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%w: %s was valid from %s to %s; renew it with your CA",
			ErrCertExpired, leaf.Subject, leaf.NotBefore.UTC().Format(day), leaf.NotAfter.UTC().Format(day))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("%w: %s is valid from %s to %s, it is now %s; check this machine's clock or wait",
			ErrCertNotYetValid, leaf.Subject, leaf.NotBefore.UTC().Format(day), leaf.NotAfter.UTC().Format(day), now.UTC().Format(day))
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) {
		warnings = append(warnings, fmt.Sprintf("publisher certificate %s lacks the codeSigning extended key usage: vSphere will show it as not valid for code signing; ask your CA for a code-signing certificate", leaf.Subject))
	}
	return warnings, nil
}

// Sign signs the manifest bytes mf (the member named mfName) and returns
// the .cert file: "SHA256(mfName)= hex" and the chain as PEM.
func (p *Publisher) Sign(mfName string, mf []byte) ([]byte, error) {
	d := sha256.Sum256(mf)
	sig, err := p.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", mfName, err)
	}
	// A remote signer could return anything; what leaves here verifies.
	if pub, ok := p.Signer.Public().(*rsa.PublicKey); !ok || rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig) != nil {
		return nil, fmt.Errorf("signing %s: the signer returned a signature that does not verify with its own public key", mfName)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "SHA256(%s)= %s\n", mfName, hex.EncodeToString(sig))
	for _, c := range p.Chain {
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}
