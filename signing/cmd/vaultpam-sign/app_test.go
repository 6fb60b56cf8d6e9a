package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runApp(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Args: args,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	code = a.run(context.Background())
	return code, out.String(), errb.String()
}

func TestSignAndVerifyRelease(t *testing.T) {
	dir := t.TempDir()
	keys, dist := filepath.Join(dir, "keys"), filepath.Join(dir, "dist")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"COSIGN_PASSWORD": "s3cret-pass", "SOURCE_DATE_EPOCH": "1767225600"}
	if code, _, stderr := runApp(t, env, "generate-key-pair", "--output-dir", keys); code != 0 {
		t.Fatalf("generate-key-pair = %d: %s", code, stderr)
	}
	ova := buildOVA(t, dir, "a", nil)
	code, stdout, stderr := runApp(t, env, "sign", "--dist", dist, "--key", filepath.Join(keys, "cosign.key"),
		"--sbom-source", "../../sbom/testdata/status", "--version", "0.1.0", ova)
	if code != 0 {
		t.Fatalf("sign = %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "SHA256SUMS.sig") {
		t.Errorf("sign output lacks SHA256SUMS.sig:\n%s", stdout)
	}
	code, stdout, stderr = runApp(t, nil, "verify", "--key", filepath.Join(keys, "cosign.pub"), dist)
	if code != 0 || !strings.Contains(stdout, "Verified OK") {
		t.Fatalf("verify = %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = runApp(t, nil, "verify-blob", "--key", filepath.Join(keys, "cosign.pub"),
		"--bundle", filepath.Join(dist, "a.ova.sigstore.json"), filepath.Join(dist, "a.ova"))
	if code != 0 || strings.TrimSpace(stdout) != "Verified OK" {
		t.Errorf("verify-blob --bundle = %d %q", code, stdout)
	}

	// One flipped byte: the release check names the file and says what to do.
	g, err := os.OpenFile(filepath.Join(dist, "a.ova"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteAt([]byte{0xff ^ readByte(t, g, 1000)}, 1000)
	g.Close()
	code, _, stderr = runApp(t, nil, "verify", "--key", filepath.Join(keys, "cosign.pub"), dist)
	if code != 1 || !strings.Contains(stderr, "vaultpam-sign: error: ") || !strings.Contains(stderr, "a.ova: file does not match the signed digest") ||
		!strings.Contains(stderr, "hint: the file is not the one that was signed") {
		t.Errorf("verify after tampering = %d, stderr:\n%s", code, stderr)
	}
	t.Logf("tampered release:\n%s", stderr)
}

func readByte(t *testing.T, f *os.File, off int64) byte {
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b[0]
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		{nil, nil, 2, "usage:"},
		{nil, []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{nil, []string{"verify-blob", "x"}, 2, "verify-blob needs --key"},
		{nil, []string{"generate-key-pair", "--output-dir", dir}, 1, "hint: export COSIGN_PASSWORD"},
		{map[string]string{"COSIGN_PASSWORD": ""}, []string{"sign", "--dist", dir, "--key", "vault://x", "/etc/hostname"}, 1, "unknown key reference scheme"},
	} {
		code, _, stderr := runApp(t, tc.env, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("vaultpam-sign %v = %d, stderr %q; want %d containing %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		code, stdout, stderr := runApp(t, nil, arg)
		if code != 0 || !strings.Contains(stdout, "usage:") || stderr != "" {
			t.Errorf("vaultpam-sign %s = %d, stdout %q, stderr %q; want 0 and the usage on stdout", arg, code, stdout, stderr)
		}
	}
}
