package signing

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	keys := newKeyDir(t, testPassword)
	s := newSigner(t, keys, testPassword)
	pub, err := LoadPublicKey(filepath.Join(keys, PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "x.ova")
	writeRandomFile(t, f, 3<<20+17)
	sig, err := s.SignFile(context.Background(), f)
	if err != nil {
		t.Fatalf("SignFile: %v", err)
	}
	if sig.Digest.Size != 3<<20+17 {
		t.Errorf("Digest.Size = %d, want %d", sig.Digest.Size, 3<<20+17)
	}
	if err := WriteSignatureFiles(f, sig); err != nil {
		t.Fatal(err)
	}
	if err := VerifySigFile(pub, f, f+SigSuffix, VerifyOptions{}); err != nil {
		t.Errorf("VerifySigFile = %v, want nil", err)
	}
	if err := VerifyBundleFile(pub, f, f+BundleSuffix); err != nil {
		t.Errorf("VerifyBundleFile = %v, want nil", err)
	}
}

func TestLoadSignerErrors(t *testing.T) {
	keys := newKeyDir(t, testPassword)
	ctx := context.Background()
	key := filepath.Join(keys, PrivateKeyFile)

	_, err := LoadSigner(ctx, key, StaticPassword([]byte("wrong")))
	if !errors.Is(err, ErrWrongPassword) {
		t.Errorf("LoadSigner(wrong password) = %v, want ErrWrongPassword", err)
	}
	_, err = LoadSigner(ctx, key, EnvPassword(func(string) (string, bool) { return "", false }))
	if !errors.Is(err, ErrNoPassword) || !strings.Contains(err.Error(), "COSIGN_PASSWORD") {
		t.Errorf("LoadSigner(COSIGN_PASSWORD unset) = %v, want ErrNoPassword naming COSIGN_PASSWORD", err)
	}
	_, err = LoadSigner(ctx, key, EnvPassword(func(k string) (string, bool) { return testPassword, k == PasswordEnv }))
	if err != nil {
		t.Errorf("LoadSigner(COSIGN_PASSWORD set) = %v", err)
	}
	_, err = LoadSigner(ctx, filepath.Join(keys, "missing.key"), StaticPassword(nil))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadSigner(missing file) = %v, want not-exist", err)
	}
	unreadable := filepath.Join(keys, "unreadable.key")
	if err := os.WriteFile(unreadable, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadSigner(ctx, unreadable, StaticPassword(nil))
	if err == nil || !strings.Contains(err.Error(), "not PEM") {
		t.Errorf("LoadSigner(garbage) = %v, want 'not PEM'", err)
	}
	_, err = LoadSigner(ctx, filepath.Join(keys, PublicKeyFile), StaticPassword(nil))
	if err == nil || !strings.Contains(err.Error(), "PUBLIC KEY") {
		t.Errorf("LoadSigner(public key) = %v, want a message naming the PEM type", err)
	}
	for _, e := range []error{err} {
		if strings.Contains(e.Error(), testPassword) {
			t.Errorf("error %q contains the password", e)
		}
	}
}

func TestKMSReferences(t *testing.T) {
	for _, tc := range []struct {
		ref     string
		wantErr error
		wantMsg string
	}{
		{"awskms:///alias/vaultpam-release", nil, ""},
		{"awskms://localhost:4566/1234abcd-12ab-34cd-56ef-1234567890ab", nil, ""},
		{"awskms:///arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", nil, ""},
		{"gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/versions/1", nil, ""},
		{"azurekms://myvault.vault.azure.net/release", nil, ""},
		{"hashivault://vaultpam-release", nil, ""},
		{"awskms:///not-an-alias", ErrBadKMSReference, "awskms:///alias/"},
		{"gcpkms://projects/p/keyRings/r", ErrBadKMSReference, "gcpkms://projects/P/locations/L"},
		{"azurekms://", ErrBadKMSReference, "azurekms://VAULT_NAME"},
		{"hashivault://a/b/c", ErrBadKMSReference, "hashivault://KEY_NAME"},
		{"pkcs11://token=foo", ErrUnknownKeyScheme, "awskms://, azurekms://, gcpkms://, hashivault://"},
		{"k8s://ns/secret", ErrUnknownKeyScheme, "cosign key file path"},
	} {
		if !IsKMSRef(tc.ref) {
			t.Errorf("IsKMSRef(%q) = false", tc.ref)
		}
		err := CheckKMSRef(tc.ref)
		if tc.wantErr == nil {
			if err != nil {
				t.Errorf("CheckKMSRef(%q) = %v, want nil", tc.ref, err)
			}
			continue
		}
		if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("CheckKMSRef(%q) = %v, want %v mentioning %q", tc.ref, err, tc.wantErr, tc.wantMsg)
		}
		// LoadSigner must refuse it the same way, before any provider runs.
		if _, lerr := LoadSigner(context.Background(), tc.ref, nil); !errors.Is(lerr, tc.wantErr) {
			t.Errorf("LoadSigner(%q) = %v, want %v", tc.ref, lerr, tc.wantErr)
		}
	}
	for _, p := range []string{"cosign.key", "./keys/cosign.key", "/abs/path/cosign.key", `C:\keys\cosign.key`} {
		if IsKMSRef(p) {
			t.Errorf("IsKMSRef(%q) = true, want false for a path", p)
		}
	}
}

// TestHashivaultWithoutAddress opens a well-formed KMS reference whose
// provider needs configuration that is missing; the error must say so
// without reaching any network.
func TestHashivaultWithoutAddress(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	_, err := LoadSigner(context.Background(), "hashivault://vaultpam-release", nil)
	if err == nil || !strings.Contains(err.Error(), "VAULT_ADDR") {
		t.Errorf("LoadSigner(hashivault without VAULT_ADDR) = %v, want an error naming VAULT_ADDR", err)
	}
}

func TestSums(t *testing.T) {
	s := Sums{"b.ova": {Sum: make([]byte, 32)}, "a.json": {Sum: append(make([]byte, 31), 1)}}
	out := s.Marshal()
	want := strings.Repeat("0", 62) + "01  a.json\n" + strings.Repeat("0", 64) + "  b.ova\n"
	if string(out) != want {
		t.Errorf("Marshal = %q, want %q", out, want)
	}
	back, err := ParseSums(out)
	if err != nil || len(back) != 2 || back["a.json"].Hex() != s["a.json"].Hex() {
		t.Errorf("ParseSums(Marshal) = %v, %v", back, err)
	}
	for _, bad := range []string{"", "zz  a\n", strings.Repeat("0", 64) + "  ../etc/passwd\n", strings.Repeat("0", 64) + "\n"} {
		if _, err := ParseSums([]byte(bad)); err == nil {
			t.Errorf("ParseSums(%q) = nil error", bad)
		}
	}
}
