package support

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The collector never reads the identity: not by name, not through a
// symbolic link in /config, not anything under the data directory; the
// refusal shows in the manifest, and the key is nowhere in the bundle.
func TestCollectorNeverReadsTheIdentity(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	cfg := filepath.Join(root, "config")
	netdir := filepath.Join(cfg, "network")
	for _, d := range []string{data, netdir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	body := strings.Split(string(keyPEM), "\n")[1]
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(data, "identity.json"), `{"connector_id":"conn-1","key":"`+string(keyPEM)+`"}`)
	write(filepath.Join(data, "notes.txt"), body) // anything under /data
	write(filepath.Join(netdir, "10-eth0.network"), "[Match]\nName=eth0\n[Network]\nDHCP=yes\n")
	// Links that lead into the data directory, and a copy named like it.
	for link, target := range map[string]string{
		filepath.Join(cfg, "connector.yaml"):         filepath.Join(data, "identity.json"),
		filepath.Join(netdir, "20-x.network"):        filepath.Join(data, "notes.txt"),
		filepath.Join(root, "resolv.conf"):           data + "/../data/identity.json",
		filepath.Join(root, "identity.json.corrupt"): "",
	} {
		if target == "" {
			write(link, string(keyPEM))
			continue
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	var read []string
	spy := func(p string) ([]byte, error) {
		mu.Lock()
		read = append(read, p)
		mu.Unlock()
		return os.ReadFile(p)
	}
	b, err := Collect(context.Background(), Options{
		Status:     func(context.Context) ([]byte, error) { return []byte(`{"state":"online"}`), nil },
		Run:        func(context.Context, string, ...string) ([]byte, error) { return []byte("ok\n"), nil },
		ReadFile:   spy,
		ConfigFile: filepath.Join(cfg, "connector.yaml"), NetworkDir: netdir,
		ResolvConf: filepath.Join(root, "resolv.conf"), OSRelease: filepath.Join(root, "identity.json.corrupt"),
		Cmdline:   filepath.Join(data, "identity.json"),
		Forbidden: []string{data},
		Now:       func() time.Time { return time.Date(2026, 11, 28, 14, 5, 8, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range read {
		real, _ := filepath.EvalSymlinks(p)
		if strings.Contains(p, "identity.json") || strings.HasPrefix(real, data) {
			t.Errorf("the collector read %s (→ %s)", p, real)
		}
	}
	if len(read) == 0 || !contains(read, filepath.Join(netdir, "10-eth0.network")) {
		t.Errorf("the collector read %v, want the ordinary network unit at least", read)
	}
	refused := 0
	for _, info := range b.Manifest.Parts {
		if strings.Contains(info.Error, "never reads the connector's identity") {
			refused++
		}
	}
	if refused < 5 {
		t.Errorf("%d parts say they were refused, want 5: %+v", refused, b.Manifest.Parts)
	}
	var buf bytes.Buffer
	if err := b.Archive(&buf); err != nil {
		t.Fatal(err)
	}
	for _, p := range b.Parts {
		if bytes.Contains(p.Data, []byte(body)) {
			t.Errorf("part %s holds the private key", p.Name)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// A source that fails leaves its error in its part and the manifest; the
// others are collected.
func TestCollectorKeepsGoing(t *testing.T) {
	b, err := Collect(context.Background(), Options{
		Run: func(_ context.Context, name string, _ ...string) ([]byte, error) {
			if name == "journalctl" {
				return nil, os.ErrNotExist
			}
			return []byte(name + " output\n"), nil
		},
		ReadFile: func(string) ([]byte, error) { return []byte("file\n"), nil },
		ReadDir:  func(string) ([]os.DirEntry, error) { return nil, os.ErrPermission },
		Units:    []string{"vaultpam-connector.service"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]PartInfo{}
	for _, p := range b.Manifest.Parts {
		got[p.Name] = p
	}
	for name, wantErr := range map[string]string{
		"status.json":                    "not available here",
		"journal/vaultpam-connector.log": "file does not exist",
		"network/units":                  "permission denied",
		"network/addresses.txt":          "",
		"config/connector.yaml":          "",
	} {
		p, ok := got[name]
		switch {
		case !ok:
			t.Errorf("no part %s in %v", name, b.Manifest.Parts)
		case wantErr == "" && p.Error != "":
			t.Errorf("part %s: error %q, want none", name, p.Error)
		case wantErr != "" && !strings.Contains(p.Error, wantErr):
			t.Errorf("part %s: error %q, want %q", name, p.Error, wantErr)
		}
	}
}
