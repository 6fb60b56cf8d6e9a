package ova

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vaultpam/appliance/appliance/ova/ovatest"
)

// signedOVA builds a small OVA signed by a new chain.
func signedOVA(t *testing.T, o ovatest.Options) (*ovatest.Chain, *Result, []byte) {
	t.Helper()
	chain := ovatest.New(t, o)
	pub, err := LoadPublisher(chain.KeyPath, chain.CertPath)
	if err != nil {
		t.Fatalf("LoadPublisher: %v", err)
	}
	cfg := testConfig(t)
	cfg.Publisher = pub
	raw := testDisk(t, 2<<20)
	var out bytes.Buffer
	res, err := Build(context.Background(), &out, bytes.NewReader(raw), int64(len(raw)), cfg)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return chain, res, out.Bytes()
}

func TestBuildWithPublisher(t *testing.T) {
	chain, res, ova := signedOVA(t, ovatest.Options{})
	ms := readMembers(t, bytes.NewReader(ova))
	var names []string
	for _, m := range ms {
		names = append(names, m.hdr.Name)
	}
	want := []string{"vaultpam-connector-1.2.3.ovf", "vaultpam-connector-1.2.3.mf", "vaultpam-connector-1.2.3.cert", "vaultpam-connector-1.2.3-disk1.vmdk"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("members (-want +got):\n%s", diff)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings for a code-signing certificate: %v", res.Warnings)
	}
	mf, cert := ms[1].data, ms[2].data
	if !bytes.Equal(cert, res.Cert) || res.CertName != want[2] {
		t.Errorf("Result.Cert/CertName do not match the member")
	}
	// The manifest still lists only the .ovf and the disk.
	if entries, err := ParseManifest(bytes.NewReader(mf)); err != nil || len(entries) != 2 {
		t.Errorf("manifest = %v, %v; want 2 entries", entries, err)
	}
	firstLine, pemPart, _ := strings.Cut(string(cert), "\n")
	if !strings.HasPrefix(firstLine, "SHA256(vaultpam-connector-1.2.3.mf)= ") || len(firstLine) != len("SHA256(vaultpam-connector-1.2.3.mf)= ")+2*384 {
		t.Errorf(".cert first line = %q, want SHA256(NAME.mf)= and 768 hex digits", firstLine)
	}
	if strings.Count(pemPart, "-----BEGIN CERTIFICATE-----") != 2 {
		t.Errorf(".cert should carry the leaf and the CA:\n%s", pemPart)
	}
	leaf, err := VerifyCert(mf, cert, "vaultpam-connector-1.2.3.mf")
	if err != nil {
		t.Fatalf("VerifyCert: %v", err)
	}
	if !leaf.Equal(chain.Leaf) {
		t.Errorf("VerifyCert returned %s, want the leaf %s", leaf.Subject, chain.Leaf.Subject)
	}
	a, err := VerifyArchive(bytes.NewReader(ova))
	if err != nil {
		t.Fatalf("VerifyArchive: %v", err)
	}
	if a.CertName != want[2] || len(a.Chain) != 2 || !a.Chain[1].Equal(chain.CA) {
		t.Errorf("VerifyArchive = %+v", a)
	}
	// Reproducible: RSA PKCS#1 v1.5 is deterministic.
	cfg := testConfig(t)
	cfg.Publisher, _ = LoadPublisher(chain.KeyPath, chain.CertPath)
	raw := testDisk(t, 2<<20)
	var again bytes.Buffer
	if _, err := Build(context.Background(), &again, bytes.NewReader(raw), int64(len(raw)), cfg); err != nil || !bytes.Equal(again.Bytes(), ova) {
		t.Errorf("a second signed build differs (err %v)", err)
	}
}

// TestCertOpenSSL checks the .cert with the openssl CLI: the signature
// verifies with `openssl dgst -verify`, equals what `openssl dgst -sign`
// computes, and the certificate chains to the CA.
func TestCertOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed (apt-get install openssl); the Go verification runs in TestBuildWithPublisher")
	}
	chain, res, _ := signedOVA(t, ovatest.Options{})
	dir := t.TempDir()
	mfPath := filepath.Join(dir, res.ManifestName)
	if err := os.WriteFile(mfPath, res.Manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	line, pemPart, _ := strings.Cut(string(res.Cert), "\n")
	sigHex := line[strings.Index(line, "= ")+2:]
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		t.Fatal(err)
	}
	sigPath, leafPath := filepath.Join(dir, "sig.bin"), filepath.Join(dir, "cert.pem")
	os.WriteFile(sigPath, sig, 0o644)
	os.WriteFile(leafPath, []byte(pemPart), 0o644)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run("dgst", "-sha256", "-verify", chain.PubPath, "-signature", sigPath, mfPath); got != "Verified OK" {
		t.Errorf("openssl dgst -verify = %q, want Verified OK", got)
	}
	// The public key openssl extracts from the .cert's leaf verifies too.
	certPub := filepath.Join(dir, "leaf.pub")
	os.WriteFile(certPub, []byte(run("x509", "-in", leafPath, "-pubkey", "-noout")+"\n"), 0o644)
	if got := run("dgst", "-sha256", "-verify", certPub, "-signature", sigPath, mfPath); got != "Verified OK" {
		t.Errorf("openssl dgst -verify with the .cert's key = %q", got)
	}
	signed := run("dgst", "-sha256", "-sign", chain.KeyPath, "-hex", mfPath)
	if _, h, _ := strings.Cut(signed, "= "); h != sigHex {
		t.Errorf("openssl dgst -sign -hex = %q, our .cert has %s", signed, sigHex)
	}
	if got := run("verify", "-CAfile", chain.CAPath, "-purpose", "any", leafPath); !strings.HasSuffix(got, ": OK") {
		t.Errorf("openssl verify = %q", got)
	}
	// One flipped byte: openssl refuses it too.
	bad := bytes.Clone(res.Manifest)
	bad[10] ^= 1
	os.WriteFile(mfPath, bad, 0o644)
	out, err := exec.Command(openssl, "dgst", "-sha256", "-verify", chain.PubPath, "-signature", sigPath, mfPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Verification failure") {
		t.Errorf("openssl on a changed .mf: %v %q", err, out)
	}
}

func TestVerifyCertFailures(t *testing.T) {
	chain, res, _ := signedOVA(t, ovatest.Options{})
	mfName := res.ManifestName
	other := ovatest.Key(t, 3072, 2)
	d := sha256.Sum256(res.Manifest)
	otherSig, err := rsa.SignPKCS1v15(rand.Reader, other, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	_, pemPart, _ := strings.Cut(string(res.Cert), "\n")
	flipped := bytes.Clone(res.Manifest)
	flipped[len(flipped)-5] ^= 1
	certFor := func(line string) []byte { return []byte(line + "\n" + pemPart) }
	caOnly := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain.CA.Raw})
	leafOnly := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain.Leaf.Raw})
	sigLine, _, _ := strings.Cut(string(res.Cert), "\n")
	for _, tc := range []struct {
		name     string
		mf, cert []byte
		want     error
		msg      string
	}{
		{"flipped .mf byte", flipped, res.Cert, ErrManifestChanged, "the manifest was changed after signing: vaultpam-connector-1.2.3.mf has sha256"},
		{"another key", res.Manifest, certFor(fmt.Sprintf("SHA256(%s)= %x", mfName, otherSig)), ErrCertWrongKey, "not made with its certificate's key (CN=VaultPAM Release Signing"},
		{"truncated signature", res.Manifest, certFor(sigLine[:len(sigLine)-20]), ErrCertWrongKey, "replaced or damaged"},
		{"other manifest name", res.Manifest, certFor(strings.Replace(sigLine, "1.2.3.mf", "9.mf", 1)), ErrCertMalformed, `signs "vaultpam-connector-9.mf"`},
		{"sha1", res.Manifest, certFor(strings.Replace(sigLine, "SHA256", "SHA1", 1)), ErrCertMalformed, "uses SHA1"},
		{"no certificate", res.Manifest, []byte(sigLine + "\n"), ErrCertMalformed, "no -----BEGIN CERTIFICATE-----"},
		{"chain out of order", res.Manifest, []byte(sigLine + "\n" + string(caOnly) + string(leafOnly)), ErrCertMalformed, "not issued by certificate 2"},
	} {
		_, err := VerifyCert(tc.mf, tc.cert, mfName)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: VerifyCert = %v; want %v containing %q", tc.name, err, tc.want, tc.msg)
			continue
		}
		for _, other := range []error{ErrManifestChanged, ErrCertWrongKey, ErrCertMalformed} {
			if other != tc.want && errors.Is(err, other) {
				t.Errorf("%s: %v also matches %v", tc.name, err, other)
			}
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

// TestVerifyArchiveTampered changes one byte of the .mf inside the OVA.
func TestVerifyArchiveTampered(t *testing.T) {
	_, res, ova := signedOVA(t, ovatest.Options{})
	i := bytes.Index(ova, res.Manifest)
	bad := bytes.Clone(ova)
	bad[i+len(res.Manifest)-3] ^= 1 // a hex digit of the disk's digest; the tar header checksum does not cover data
	_, err := VerifyArchive(bytes.NewReader(bad))
	if !errors.Is(err, ErrArchive) || !errors.Is(err, ErrManifestChanged) {
		t.Errorf("VerifyArchive(tampered .mf) = %v; want the disk digest and the .cert to fail", err)
	}
	// Without a publisher: no .cert, and the archive still verifies.
	raw := testDisk(t, 1<<20)
	var plain bytes.Buffer
	if _, err := Build(context.Background(), &plain, bytes.NewReader(raw), int64(len(raw)), testConfig(t)); err != nil {
		t.Fatal(err)
	}
	a, err := VerifyArchive(bytes.NewReader(plain.Bytes()))
	if err != nil || a.CertName != "" || a.Chain != nil || len(a.Members) != 3 {
		t.Errorf("VerifyArchive(unsigned) = %+v, %v", a, err)
	}
}

func TestLoadPublisherErrors(t *testing.T) {
	good := ovatest.New(t, ovatest.Options{})
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		p := filepath.Join(dir, name)
		ovatest.WritePEM(t, p, blocks...)
		return p
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	small := ovatest.Key(t, 1024, 0)
	smallChain := ovatest.New(t, ovatest.Options{LeafKey: small})
	otherDER, _ := x509.MarshalPKCS8PrivateKey(ovatest.Key(t, 3072, 2))
	//lint:ignore SA1019 the legacy encrypted PEM form is what old tools write; it must be refused clearly.
	legacy, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(good.LeafKey), []byte("pw"), x509.PEMCipherAES256) //nolint:staticcheck
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, key, cert string
		want            error
		msg             string
	}{
		{"ECDSA PKCS#8", write("ec8.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), good.CertPath, ErrKeyNotRSA, "ECDSA P-256 key; vSphere needs an RSA code-signing key of at least 2048 bits"},
		{"ECDSA SEC1", write("ec.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), good.CertPath, ErrKeyNotRSA, "ECDSA key"},
		{"RSA-1024", smallChain.KeyPath, smallChain.CertPath, ErrKeyTooSmall, "RSA 1024 bits, vSphere needs at least 2048"},
		{"other key", write("other.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: otherDER}), good.CertPath, ErrKeyMismatch, "(CN=VaultPAM Release Signing,O=VaultPAM Test,C=DE, RSA 3072-bit key) is for another key"},
		{"encrypted legacy PEM", write("enc1.pem", legacy), good.CertPath, ErrKeyEncrypted, "openssl pkey -in ENCRYPTED.pem -out KEY.pem"},
		{"not PEM", write("empty.pem"), good.CertPath, ErrKeyUnreadable, "want a -----BEGIN PRIVATE KEY-----"},
		{"OpenSSH format", write("id_rsa", &pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte("openssh-key-v1\x00")}), good.CertPath, ErrKeyUnreadable, "it is in OpenSSH format; convert a copy"},
		{"certificate as key", good.KeyPath, good.KeyPath, ErrCertUnreadable, "it contains a private key"},
		{"CA first", good.KeyPath, write("rev.pem", &pem.Block{Type: "CERTIFICATE", Bytes: good.CA.Raw}), ErrKeyMismatch, "VaultPAM Test Root CA"},
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		p := filepath.Join(dir, "enc8.pem")
		// A throwaway test pass phrase on argv; real keys never go there.
		out, err := exec.Command(openssl, "pkey", "-in", good.KeyPath, "-aes256", "-passout", "pass:test-only", "-out", p).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl pkey -aes256: %v\n%s", err, out)
		}
		cases = append(cases, struct {
			name, key, cert string
			want            error
			msg             string
		}{"encrypted PKCS#8", p, good.CertPath, ErrKeyEncrypted, "publisher key is encrypted: the build cannot ask for its pass phrase"})
	} else {
		t.Log("openssl not installed: the encrypted PKCS#8 case is not run")
	}
	sentinels := []error{ErrKeyNotRSA, ErrKeyTooSmall, ErrKeyMismatch, ErrKeyEncrypted, ErrKeyUnreadable, ErrCertUnreadable, ErrCertChain}
	for _, tc := range cases {
		_, err := LoadPublisher(tc.key, tc.cert)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: LoadPublisher = %v; want %v containing %q", tc.name, err, tc.want, tc.msg)
			continue
		}
		for _, s := range sentinels {
			if s != tc.want && errors.Is(err, s) {
				t.Errorf("%s: %v also matches %v", tc.name, err, s)
			}
		}
		keyBytes, _ := os.ReadFile(tc.key)
		for _, l := range strings.Split(string(keyBytes), "\n") {
			if len(l) > 16 && !strings.HasPrefix(l, "-----") && strings.Contains(err.Error(), l) {
				t.Errorf("%s: the error shows key material: %v", tc.name, err)
			}
		}
		t.Logf("%s: %v", tc.name, err)
	}
	// PKCS#1 "RSA PRIVATE KEY" loads too.
	p1 := write("pkcs1.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(good.LeafKey)})
	if _, err := LoadPublisher(p1, good.CertPath); err != nil {
		t.Errorf("LoadPublisher(PKCS#1) = %v", err)
	}
	if _, err := LoadPublisher(filepath.Join(dir, "missing.pem"), good.CertPath); err == nil || !strings.Contains(err.Error(), "reading publisher key") {
		t.Errorf("LoadPublisher(missing) = %v", err)
	}
}

func TestPublisherValidity(t *testing.T) {
	now := time.Now()
	expired := ovatest.New(t, ovatest.Options{NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.AddDate(-1, 0, 0)})
	future := ovatest.New(t, ovatest.Options{NotBefore: now.AddDate(0, 1, 0), NotAfter: now.AddDate(2, 0, 0)})
	noEKU := ovatest.New(t, ovatest.Options{NoCodeSigning: true})
	for _, tc := range []struct {
		name  string
		chain *ovatest.Chain
		want  error
		msg   string
	}{
		{"expired", expired, ErrCertExpired, "publisher certificate has expired: CN=VaultPAM Release Signing,O=VaultPAM Test,C=DE was valid from " + expired.Leaf.NotBefore.UTC().Format("2006-01-02 15:04:05 MST") + " to " + expired.Leaf.NotAfter.UTC().Format("2006-01-02 15:04:05 MST")},
		{"not yet valid", future, ErrCertNotYetValid, "is valid from " + future.Leaf.NotBefore.UTC().Format("2006-01-02 15:04:05 MST")},
	} {
		pub, err := LoadPublisher(tc.chain.KeyPath, tc.chain.CertPath)
		if err != nil {
			t.Fatalf("%s: LoadPublisher: %v", tc.name, err)
		}
		cfg := testConfig(t)
		cfg.Publisher = pub
		cfg.Now = func() time.Time { return now }
		var out bytes.Buffer
		_, err = Build(context.Background(), &out, bytes.NewReader(make([]byte, 1<<20)), 1<<20, cfg)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Build = %v; want %v containing %q", tc.name, err, tc.want, tc.msg)
		}
		if out.Len() != 0 {
			t.Errorf("%s: Build wrote %d bytes before failing", tc.name, out.Len())
		}
		t.Logf("%s: %v", tc.name, err)
	}
	pub, err := LoadPublisher(noEKU.KeyPath, noEKU.CertPath)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pub.Check(now)
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "lacks the codeSigning extended key usage: vSphere will show it as not valid for code signing") {
		t.Errorf("Check(no codeSigning EKU) = %q, %v; want one warning", w, err)
	}
	cfg := testConfig(t)
	cfg.Publisher = pub
	res, err := Build(context.Background(), &bytes.Buffer{}, bytes.NewReader(make([]byte, 1<<20)), 1<<20, cfg)
	if err != nil || len(res.Warnings) != 1 || res.Cert == nil {
		t.Errorf("Build(no codeSigning EKU) = %v, %v; want a .cert and one warning", res, err)
	}
}

// TestVerifyArchiveOrder rebuilds a signed OVA with the .cert after the
// disk, and checks a file that is not a tar archive.
func TestVerifyArchiveOrder(t *testing.T) {
	_, _, signed := signedOVA(t, ovatest.Options{})
	ms := readMembers(t, bytes.NewReader(signed))
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, m := range []member{ms[0], ms[1], ms[3], ms[2]} {
		if err := tw.WriteHeader(m.hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.data)
	}
	tw.Close()
	_, err := VerifyArchive(&b)
	if !errors.Is(err, ErrArchive) || !strings.Contains(err.Error(), "vaultpam-connector-1.2.3.cert follows vaultpam-connector-1.2.3-disk1.vmdk; it must come right after the .mf") {
		t.Errorf("VerifyArchive(.cert last) = %v", err)
	}
	if _, err := VerifyArchive(strings.NewReader(strings.Repeat("not a tar archive ", 64))); !errors.Is(err, ErrArchive) {
		t.Errorf("VerifyArchive(not tar) = %v; want ErrArchive", err)
	}
}
