package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/support"
	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/lab/broker"
)

// A bundle the lab received is listed and decrypts with DIR/support.key
// into a directory; a short upload leaves nothing behind.
func TestBundlesListAndDecrypt(t *testing.T) {
	dir := t.TempDir()
	a, err := lab.OpenAuthority(lab.DefaultAuthorityConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, lab.SupportKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("support.key: %v %v, want 0600", fi, err)
	}
	b := &support.Bundle{Manifest: support.Manifest{Format: 1, CreatedAt: time.Now().UTC(), ConnectorID: "conn-1", Version: "0.2.0"},
		Parts: []support.Part{{Name: "status.json", Data: []byte(`{"state":"online"}`)}, {Name: "journal/kernel.log", Data: []byte("boot\n")}}}
	ct, err := b.Encrypt(a.SupportRecipient())
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.StoreBundle(context.Background(), broker.SupportBundle{ConnectorID: "conn-1", Name: "s.age", Size: int64(len(ct))}, bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.StoreBundle(context.Background(), broker.SupportBundle{ConnectorID: "conn-1", Name: "short", Size: 100},
		io.MultiReader(bytes.NewReader(make([]byte, 10)), errReader{})); err == nil {
		t.Error("a short upload was stored")
	}
	a.Close()
	if ents, _ := os.ReadDir(filepath.Join(dir, lab.BundlesDir)); len(ents) != 2 {
		t.Errorf("bundles dir holds %d files, want the one bundle and its description", len(ents))
	}

	out, errs, code := runLab(t, "bundles", "--state", dir)
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "conn-1") {
		t.Fatalf("bundles = %d\n%s%s", code, out, errs)
	}
	dest := filepath.Join(t.TempDir(), "b")
	out, errs, code = runLab(t, "bundles", "--state", dir, "--decrypt", id, "--out", dest)
	if code != 0 || !strings.Contains(out, "2 parts") {
		t.Fatalf("bundles --decrypt = %d\n%s%s", code, out, errs)
	}
	for name, want := range map[string]string{"status.json": `{"state":"online"}`, "journal/kernel.log": "boot\n", "manifest.json": `"connector_id": "conn-1"`} {
		got, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || !strings.Contains(string(got), want) {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	// Again into the same directory: nothing is overwritten.
	if _, errs, code = runLab(t, "bundles", "--state", dir, "--decrypt", id, "--out", dest); code == 0 || !strings.Contains(errs, "hint: choose an empty or new --out directory") {
		t.Errorf("decrypting over an unpacked bundle = %d\n%s", code, errs)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
