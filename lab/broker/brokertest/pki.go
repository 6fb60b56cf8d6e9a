// Package brokertest builds throwaway fixtures for tunnel tests and
// benchmarks: a test CA, control-plane server certificates, connector
// client certificates with the vaultpam://connector/<id> URI SAN, a TLS
// listener serving a Broker, and TCP echo targets. Everything lives in
// memory and on loopback.
package brokertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/vaultpam/appliance/lab/broker"
)

// PKI is a throwaway certificate authority.
type PKI struct {
	Cert   *x509.Certificate
	Key    *ecdsa.PrivateKey
	Pool   *x509.CertPool
	serial atomic.Int64
}

// NewPKI makes a fresh CA valid for a day.
func NewPKI() (*PKI, error) { return NewPKINamed("vaultpam test CA") }

// NewPKINamed is NewPKI with the CA's common name (a test's second CA, say
// a TLS-inspecting proxy's, is told apart by it).
func NewPKINamed(name string) (*PKI, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	p := &PKI{Cert: cert, Key: key, Pool: x509.NewCertPool()}
	p.Pool.AddCert(cert)
	p.serial.Store(1)
	return p, nil
}

// CAPEM returns the CA certificate as PEM.
func (p *PKI) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Cert.Raw})
}

func (p *PKI) sign(tmpl *x509.Certificate, pub any) ([]byte, error) {
	tmpl.SerialNumber = big.NewInt(p.serial.Add(1))
	return x509.CreateCertificate(rand.Reader, tmpl, p.Cert, pub, p.Key)
}

// ServerCert issues a server certificate for 127.0.0.1, ::1 and localhost,
// valid from an hour ago for a day.
func (p *PKI) ServerCert() (tls.Certificate, error) {
	return p.ServerCertFor(time.Now().Add(-time.Hour), 25*time.Hour, "localhost", "127.0.0.1", "::1")
}

// ServerCertFor issues a server certificate for names (host names or IPs),
// valid from notBefore for lifetime: tests make expired, not yet valid or
// wrongly named control plane certificates with it.
func (p *PKI) ServerCertFor(notBefore time.Time, lifetime time.Duration, names ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "control plane"},
		NotBefore:   notBefore,
		NotAfter:    notBefore.Add(lifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := p.sign(tmpl, &key.PublicKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// ClientCert issues a connector certificate for id, valid from notBefore
// for lifetime.
func (p *PKI) ClientCert(id string, notBefore time.Time, lifetime time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	return p.ClientCertForKey(id, key, &key.PublicKey, notBefore, lifetime)
}

// ClientCertForKey issues a connector certificate for id and public key
// pub; key (may be nil) is put in the returned tls.Certificate.
func (p *PKI) ClientCertForKey(id string, key any, pub any, notBefore time.Time, lifetime time.Duration) (tls.Certificate, error) {
	u, err := url.Parse("vaultpam://connector/" + id)
	if err != nil {
		return tls.Certificate{}, err
	}
	der, err := p.sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: id},
		NotBefore:   notBefore,
		NotAfter:    notBefore.Add(lifetime),
		URIs:        []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, pub)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing client certificate: %w", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Renew implements broker.Authority: it issues a one-hour certificate for
// connectorID and the CSR's public key, which must be current's (the CSR's
// names are ignored).
func (p *PKI) Renew(_ context.Context, connectorID string, current *x509.Certificate, csr *x509.CertificateRequest) ([][]byte, error) {
	if !broker.SameKey(csr.PublicKey, current.PublicKey) {
		return nil, fmt.Errorf("renewal CSR is not for the key of the current certificate")
	}
	c, err := p.ClientCertForKey(connectorID, nil, csr.PublicKey, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		return nil, err
	}
	return c.Certificate, nil
}
