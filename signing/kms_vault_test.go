package signing

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// fakeVaultTransit is the part of HashiCorp Vault's transit engine that
// sigstore's hashivault provider uses (read key, sign prehashed digest),
// served on loopback only.
func fakeVaultTransit(t *testing.T, token string) (addr string, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/transit/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Vault-Token") != token {
			reply(w, http.StatusForbidden, map[string]any{"errors": []string{"permission denied"}})
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/transit/keys/vaultpam-release":
			reply(w, 200, map[string]any{"data": map[string]any{
				"latest_version": 1,
				"keys":           map[string]any{"1": map[string]any{"name": "P-256", "public_key": string(pubPEM)}},
			}})
		case (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == "/v1/transit/sign/vaultpam-release/sha2-256":
			var req struct {
				Input     string `json:"input"`
				Prehashed bool   `json:"prehashed"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !req.Prehashed {
				reply(w, 400, map[string]any{"errors": []string{"want a prehashed input"}})
				return
			}
			digest, err := base64.StdEncoding.DecodeString(req.Input)
			if err != nil || len(digest) != 32 {
				reply(w, 400, map[string]any{"errors": []string{"bad input"}})
				return
			}
			sig, err := ecdsa.SignASN1(rand.Reader, key, digest)
			if err != nil {
				reply(w, 500, map[string]any{"errors": []string{err.Error()}})
				return
			}
			reply(w, 200, map[string]any{"data": map[string]any{"signature": "vault:v1:" + base64.StdEncoding.EncodeToString(sig)}})
		default:
			reply(w, 404, map[string]any{"errors": []string{"no handler for " + r.Method + " " + r.URL.Path}})
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), key
}

// vaultEnv points the provider at the fake and nowhere else.
func vaultEnv(t *testing.T, addr, token string) {
	t.Setenv("VAULT_ADDR", addr)
	t.Setenv("VAULT_TOKEN", token)
	t.Setenv("HOME", t.TempDir()) // no ~/.vault-token, no token helper
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "VAULT_NAMESPACE", "TRANSIT_SECRET_ENGINE_PATH", "VAULT_KEY_PREFIX"} {
		t.Setenv(k, "")
	}
}

// TestSignReleaseWithVaultKMS signs a release through the hashivault://
// provider against a fake transit engine on loopback, and checks the result
// with our verification and, when present, the cosign CLI.
func TestSignReleaseWithVaultKMS(t *testing.T) {
	addr, key := fakeVaultTransit(t, "test-token")
	vaultEnv(t, addr, "test-token")
	dist := t.TempDir()
	ova := filepath.Join(dist, "kms.ova")
	writeRandomFile(t, ova, 2<<20)
	cfg := releaseConfig(t, dist, ova)
	cfg.Key = "hashivault://vaultpam-release"
	rel, err := SignRelease(context.Background(), cfg)
	if err != nil {
		t.Fatalf("SignRelease(hashivault) = %v", err)
	}
	pub, err := ParsePublicKey(rel.PublicKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(key.Public()) {
		t.Error("cosign.pub is not the Vault key's public key")
	}
	if _, err := os.Stat(filepath.Join(dist, PrivateKeyFile)); !os.IsNotExist(err) {
		t.Error("a KMS build wrote cosign.key into dist")
	}
	if _, err := VerifyRelease(pub, dist); err != nil {
		t.Errorf("VerifyRelease = %v", err)
	}
	if cosign := cosignCLIOptional(t); cosign != "" {
		out, err := runCosign(t, cosign, dist, "verify-blob", "--key", "cosign.pub", "--signature", "kms.ova.sig", "--insecure-ignore-tlog", "kms.ova")
		if err != nil || !strings.Contains(out, "Verified OK") {
			t.Errorf("cosign verify-blob of a Vault-signed OVA: %v\n%s", err, out)
		}
	}
}

// TestVaultKMSPermissionDenied: a KMS that refuses (bad token) gives an
// error that names the key and where credentials come from, and leaves no
// signatures.
func TestVaultKMSPermissionDenied(t *testing.T) {
	addr, _ := fakeVaultTransit(t, "right-token")
	vaultEnv(t, addr, "wrong-token")
	dist := t.TempDir()
	ova := filepath.Join(dist, "kms.ova")
	writeRandomFile(t, ova, 1<<16)
	cfg := releaseConfig(t, dist, ova)
	cfg.Key = "hashivault://vaultpam-release"
	_, err := SignRelease(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("SignRelease(bad token) = %v, want permission denied", err)
	}
	if strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("error %q contains the Vault token", err)
	}
	t.Logf("error: %v", err)
	for _, n := range listDir(t, dist) {
		if strings.HasSuffix(n, ".sig") || n == SumsFile {
			t.Errorf("dist holds %s after a failed KMS signing", n)
		}
	}
}
