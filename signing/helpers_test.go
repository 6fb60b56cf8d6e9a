package signing

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testPassword is the password of the test keys; it is never on argv.
const testPassword = "correct horse battery staple"

// newKeyDir generates a key pair into a temp dir and returns the dir.
func newKeyDir(t *testing.T, password string) string {
	t.Helper()
	dir := t.TempDir()
	kp, err := GenerateKeyPair(StaticPassword([]byte(password)))
	if err != nil {
		t.Fatalf("GenerateKeyPair: %v", err)
	}
	if err := WriteKeyPair(dir, kp); err != nil {
		t.Fatalf("WriteKeyPair: %v", err)
	}
	return dir
}

func newSigner(t *testing.T, keyDir, password string) *Signer {
	t.Helper()
	sv, err := LoadSigner(context.Background(), filepath.Join(keyDir, PrivateKeyFile), StaticPassword([]byte(password)))
	if err != nil {
		t.Fatalf("LoadSigner: %v", err)
	}
	s, err := NewSigner(context.Background(), sv)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

// writeRandomFile writes size random bytes (an OVA stand-in) in chunks.
func writeRandomFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
}

// flipByte flips one bit of the byte at off.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// cosignCLI finds the real cosign CLI: $VAULTPAM_COSIGN (set by make), or
// bin/tools/cosign at the repository root (after `make tools`). Building
// cosign takes minutes, so the test skips rather than builds it.
func cosignCLI(t *testing.T) string {
	t.Helper()
	p := os.Getenv("VAULTPAM_COSIGN")
	if p == "" {
		p = filepath.Join("..", "bin", "tools", "cosign")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Skipf("cosign CLI not found at %s (run `make tools` or set VAULTPAM_COSIGN): %v", abs, err)
	}
	return abs
}

// runCosign runs cosign with args in dir, with no password and no network
// configuration in its environment, and returns combined output.
func runCosign(t *testing.T, cosign, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(cosign, args...)
	cmd.Dir = dir
	cmd.Env = cosignEnv(dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// cosignCLIOptional is cosignCLI for tests that also check our own code:
// "" means run without the cosign half.
func cosignCLIOptional(t *testing.T) string {
	t.Helper()
	p := os.Getenv("VAULTPAM_COSIGN")
	if p == "" {
		p = filepath.Join("..", "bin", "tools", "cosign")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Logf("cosign CLI not found at %s (run `make tools`): checking our own verification only", abs)
		return ""
	}
	return abs
}

// runCosignWithPassword is runCosign with COSIGN_PASSWORD in the
// environment (never on argv).
func runCosignWithPassword(t *testing.T, cosign, dir, password string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(cosign, args...)
	cmd.Dir = dir
	cmd.Env = append(cosignEnv(dir), "COSIGN_PASSWORD="+password)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// cosignEnv is the whole environment of a cosign run in tests. cosign
// verify-blob --signature tries to fetch sigstore's TUF trusted root even
// with --insecure-ignore-tlog (and --offline); the proxy variables send any
// such request to a closed port on loopback, so nothing leaves the machine
// (not even a DNS lookup) and cosign goes on with "Verified OK".
func cosignEnv(dir string) []string {
	return []string{
		"HOME=" + dir, "PATH=/usr/bin:/bin", "TUF_ROOT=" + filepath.Join(dir, ".sigstore"),
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=",
		"https_proxy=http://127.0.0.1:9", "http_proxy=http://127.0.0.1:9", "no_proxy=",
	}
}
