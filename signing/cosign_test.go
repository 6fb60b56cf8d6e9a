package signing

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture is a directory with a signed multi-MiB OVA stand-in, its .sig and
// bundle, cosign.pub, and a second key pair ("other/").
type fixture struct {
	dir, ova, pub string
	signer        *Signer
	other         *Signer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	keys := newKeyDir(t, testPassword)
	fx := &fixture{dir: dir, ova: filepath.Join(dir, "vaultpam-connector-0.1.0.ova"), pub: filepath.Join(keys, PublicKeyFile)}
	fx.signer = newSigner(t, keys, testPassword)
	fx.other = newSigner(t, newKeyDir(t, ""), "")
	writeRandomFile(t, fx.ova, 6<<20+123) // not a multiple of any block size
	sig, err := fx.signer.SignFile(context.Background(), fx.ova)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSignatureFiles(fx.ova, sig); err != nil {
		t.Fatal(err)
	}
	return fx
}

// trustedRoot makes the empty trusted root cosign needs to read a new
// bundle with --key.
func trustedRoot(t *testing.T, cosign, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "trusted_root.json")
	if out, err := runCosign(t, cosign, dir, "trusted-root", "create", "--out", p); err != nil {
		t.Fatalf("cosign trusted-root create: %v\n%s", err, out)
	}
	return p
}

func cosignVerifySig(t *testing.T, cosign string, fx *fixture, file, sig string) (string, error) {
	t.Helper()
	return runCosign(t, cosign, fx.dir, "verify-blob", "--key", fx.pub, "--signature", sig, "--insecure-ignore-tlog", file)
}

func cosignVerifyBundle(t *testing.T, cosign string, fx *fixture, file, bundle, root string) (string, error) {
	t.Helper()
	return runCosign(t, cosign, fx.dir, "verify-blob", "--key", fx.pub, "--bundle", bundle,
		"--new-bundle-format", "--trusted-root", root, "--insecure-ignore-tlog", file)
}

func TestCosignAcceptsOurSignatures(t *testing.T) {
	cosign := cosignCLI(t)
	fx := newFixture(t)
	out, err := cosignVerifySig(t, cosign, fx, fx.ova, fx.ova+SigSuffix)
	if err != nil || !strings.Contains(out, "Verified OK") {
		t.Fatalf("cosign verify-blob --signature: err=%v\n%s", err, out)
	}
	root := trustedRoot(t, cosign, fx.dir)
	out, err = cosignVerifyBundle(t, cosign, fx, fx.ova, fx.ova+BundleSuffix, root)
	if err != nil || !strings.Contains(out, "Verified OK") {
		t.Fatalf("cosign verify-blob --bundle: err=%v\n%s", err, out)
	}
}

// TestCosignSignatureReadByUs checks the other direction: a signature made
// by the cosign CLI with a key we generated verifies with our Verify.
func TestCosignSignatureReadByUs(t *testing.T) {
	cosign := cosignCLI(t)
	dir := t.TempDir()
	keys := newKeyDir(t, testPassword)
	f := filepath.Join(dir, "blob")
	writeRandomFile(t, f, 1<<20)
	out, err := runCosignWithPassword(t, cosign, dir, testPassword, "sign-blob", "--key", filepath.Join(keys, PrivateKeyFile),
		"--tlog-upload=false", "--output-signature", f+SigSuffix, "--yes", f)
	if err != nil {
		t.Fatalf("cosign sign-blob with our key: %v\n%s", err, out)
	}
	pub, err := LoadPublicKey(filepath.Join(keys, PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySigFile(pub, f, f+SigSuffix, VerifyOptions{}); err != nil {
		t.Errorf("VerifySigFile(cosign's signature) = %v", err)
	}
}

// TestTamperingFailsEverywhere: a flipped byte, a signature from another
// key, a truncated or garbled signature each fail with cosign and with our
// own verification, and ours says which it is.
func TestTamperingFailsEverywhere(t *testing.T) {
	cosign := cosignCLIOptional(t)
	fx := newFixture(t)
	pub, err := LoadPublicKey(fx.pub)
	if err != nil {
		t.Fatal(err)
	}
	goodDigest, err := DigestFile(fx.ova)
	if err != nil {
		t.Fatal(err)
	}
	var root string
	if cosign != "" {
		root = trustedRoot(t, cosign, fx.dir)
	}
	sigB64, err := os.ReadFile(fx.ova + SigSuffix)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(fx.dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	otherSig, err := fx.other.SignDigest(context.Background(), goodDigest)
	if err != nil {
		t.Fatal(err)
	}
	otherBundle, err := otherSig.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(fx.ova + BundleSuffix)

	cases := []struct {
		name       string
		prepare    func() (file, sig, bundle string)
		sigErr     error // VerifySig without a known digest
		knownErr   error // VerifySig with the digest from a verified SHA256SUMS
		bundleErr  error
		cosignSays string // part of cosign's failure output
	}{
		{
			name: "flipped byte in the OVA",
			prepare: func() (string, string, string) {
				f := filepath.Join(fx.dir, "tampered.ova")
				copyFile(t, fx.ova, f)
				flipByte(t, f, 3<<20)
				return f, fx.ova + SigSuffix, fx.ova + BundleSuffix
			},
			sigErr: ErrSignatureMismatch, knownErr: ErrDigestMismatch, bundleErr: ErrDigestMismatch,
			cosignSays: "invalid signature",
		},
		{
			name: "signature from another key",
			prepare: func() (string, string, string) {
				return fx.ova, write("other.sig", otherSig.Base64()), write("other.sigstore.json", otherBundle)
			},
			sigErr: ErrSignatureMismatch, knownErr: ErrWrongKey, bundleErr: ErrWrongKey,
			cosignSays: "invalid signature",
		},
		{
			name: "truncated signature",
			prepare: func() (string, string, string) {
				// Cut on a base64 quantum so it decodes: the DER is cut short.
				n := len(sigB64) / 2 / 4 * 4
				raw, err := decodeSigFile(sigB64)
				if err != nil {
					t.Fatal(err)
				}
				short := &Signature{Digest: goodDigest, Sig: raw[:len(raw)/2], KeyHint: fx.signer.hint}
				b, err := short.Bundle()
				if err != nil {
					t.Fatal(err)
				}
				return fx.ova, write("trunc.sig", sigB64[:n]), write("trunc.sigstore.json", b)
			},
			sigErr: ErrBadSignature, knownErr: ErrBadSignature, bundleErr: ErrBadSignature,
			cosignSays: "invalid signature",
		},
		{
			name: "garbled signature",
			prepare: func() (string, string, string) {
				g := []byte(strings.Replace(string(sigB64), string(sigB64[10:14]), "!!!!", 1))
				return fx.ova, write("garbled.sig", g), write("garbled.sigstore.json", []byte(strings.Replace(string(good), string(sigB64), "!!!!"+string(sigB64[4:]), 1)))
			},
			sigErr: ErrBadSignature, knownErr: ErrBadSignature, bundleErr: ErrBadSignature,
			cosignSays: "invalid signature",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file, sig, bundle := tc.prepare()
			err := VerifySigFile(pub, file, sig, VerifyOptions{})
			if !errors.Is(err, tc.sigErr) {
				t.Errorf("VerifySigFile = %v, want %v", err, tc.sigErr)
			}
			t.Logf("our verify (.sig): %v", err)
			err = VerifySigFile(pub, file, sig, VerifyOptions{Expected: &goodDigest})
			if !errors.Is(err, tc.knownErr) {
				t.Errorf("VerifySigFile(with SHA256SUMS digest) = %v, want %v", err, tc.knownErr)
			}
			t.Logf("our verify (.sig + SHA256SUMS): %v", err)
			err = VerifyBundleFile(pub, file, bundle)
			if !errors.Is(err, tc.bundleErr) {
				t.Errorf("VerifyBundleFile = %v, want %v", err, tc.bundleErr)
			}
			t.Logf("our verify (bundle): %v", err)
			if cosign == "" {
				return
			}
			out, err := cosignVerifySig(t, cosign, fx, file, sig)
			if err == nil || strings.Contains(out, "Verified OK") {
				t.Errorf("cosign verify-blob --signature accepted it:\n%s", out)
			} else if !strings.Contains(out, tc.cosignSays) {
				t.Errorf("cosign verify-blob --signature said %q, want it to contain %q", out, tc.cosignSays)
			}
			t.Logf("cosign (.sig): %s", lastLine(out))
			out, err = cosignVerifyBundle(t, cosign, fx, file, bundle, root)
			if err == nil || strings.Contains(out, "Verified OK") {
				t.Errorf("cosign verify-blob --bundle accepted it:\n%s", out)
			}
			t.Logf("cosign (bundle): %s", lastLine(out))
		})
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
