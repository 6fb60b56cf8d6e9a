// Package ovatest makes RSA keys and code-signing certificate chains (a
// self-signed CA and a leaf) for tests of the OVA publisher signature. It
// is for tests only: the keys are written unencrypted to the test's
// directory.
package ovatest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// keys caches generated keys per test binary: RSA-3072 generation is slow
// on a loaded machine and the tests need only a few distinct keys.
var keys struct {
	sync.Mutex
	m map[[2]int]*rsa.PrivateKey
}

// Key returns the n-th RSA key of the given size made in this test binary
// (the same key for the same bits and n).
func Key(t testing.TB, bits, n int) *rsa.PrivateKey {
	t.Helper()
	keys.Lock()
	defer keys.Unlock()
	if keys.m == nil {
		keys.m = map[[2]int]*rsa.PrivateKey{}
	}
	if k, ok := keys.m[[2]int{bits, n}]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatalf("generating RSA-%d key: %v", bits, err)
	}
	keys.m[[2]int{bits, n}] = k
	return k
}

// Options shape the leaf certificate.
type Options struct {
	// NotBefore and NotAfter of the leaf; zero means an hour ago and a
	// year from now.
	NotBefore, NotAfter time.Time
	// NoCodeSigning leaves out the codeSigning extended key usage.
	NoCodeSigning bool
	// LeafKey is the key the leaf certifies; nil means Key(t, 3072, 1).
	LeafKey *rsa.PrivateKey
}

// Chain is a CA, a leaf it issued, and their files in Dir.
type Chain struct {
	CAKey, LeafKey *rsa.PrivateKey
	CA, Leaf       *x509.Certificate
	// KeyPath is the leaf key as unencrypted PKCS#8 PEM; CertPath the leaf
	// then the CA as PEM; CAPath the CA alone; PubPath the leaf's public
	// key as PEM (for openssl dgst -verify).
	KeyPath, CertPath, CAPath, PubPath string
}

// New makes a chain in a new temporary directory. The CA key is
// Key(t, 3072, 0).
func New(t testing.TB, o Options) *Chain {
	t.Helper()
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.AddDate(1, 0, 0)
	}
	if o.LeafKey == nil {
		o.LeafKey = Key(t, 3072, 1)
	}
	c := &Chain{CAKey: Key(t, 3072, 0), LeafKey: o.LeafKey}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "VaultPAM Test Root CA", Organization: []string{"VaultPAM Test"}},
		NotBefore:             now.AddDate(-1, 0, 0),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	c.CA = create(t, caTmpl, caTmpl, &c.CAKey.PublicKey, c.CAKey)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "VaultPAM Release Signing", Organization: []string{"VaultPAM Test"}, Country: []string{"DE"}},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	if o.NoCodeSigning {
		leafTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	c.Leaf = create(t, leafTmpl, c.CA, &o.LeafKey.PublicKey, c.CAKey)

	dir := t.TempDir()
	c.KeyPath = filepath.Join(dir, "publisher.key")
	c.CertPath = filepath.Join(dir, "publisher.crt")
	c.CAPath = filepath.Join(dir, "ca.crt")
	c.PubPath = filepath.Join(dir, "publisher.pub")
	pk8, err := x509.MarshalPKCS8PrivateKey(o.LeafKey)
	if err != nil {
		t.Fatal(err)
	}
	WritePEM(t, c.KeyPath, pemBlock("PRIVATE KEY", pk8))
	WritePEM(t, c.CertPath, pemBlock("CERTIFICATE", c.Leaf.Raw), pemBlock("CERTIFICATE", c.CA.Raw))
	WritePEM(t, c.CAPath, pemBlock("CERTIFICATE", c.CA.Raw))
	spki, err := x509.MarshalPKIXPublicKey(&o.LeafKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	WritePEM(t, c.PubPath, pemBlock("PUBLIC KEY", spki))
	return c
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub *rsa.PublicKey, signer *rsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatalf("creating certificate %s: %v", tmpl.Subject, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemBlock(typ string, der []byte) *pem.Block { return &pem.Block{Type: typ, Bytes: der} }

// WritePEM writes the blocks to path, mode 0600.
func WritePEM(t testing.TB, path string, blocks ...*pem.Block) {
	t.Helper()
	var b []byte
	for _, blk := range blocks {
		b = append(b, pem.EncodeToMemory(blk)...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(fmt.Errorf("writing %s: %w", path, err))
	}
}
