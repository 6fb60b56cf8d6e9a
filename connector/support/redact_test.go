package support

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/vaultpam/appliance/connector/redact/redacttest"
)

// plant puts every secret into text around ordinary lines. A truncated
// PEM key goes last: without its END line the redactor takes everything
// after its BEGIN line, by design.
func plant(prefix string, ss []redacttest.Secret) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s: ordinary line before\n", prefix)
	var last []redacttest.Secret
	for _, s := range ss {
		if strings.HasPrefix(s.Kind, "truncated") {
			last = append(last, s)
			continue
		}
		fmt.Fprintf(&b, "%s [%s]: %s\n", prefix, s.Kind, s.Text)
	}
	fmt.Fprintf(&b, "%s: ordinary line after\n", prefix)
	for _, s := range last {
		fmt.Fprintf(&b, "%s [%s]: %s\n", prefix, s.Kind, s.Text)
	}
	return b.Bytes()
}

// TestNoPlantedSecretSurvives is the property: whatever tokens, keys,
// passwords and credentials appear in whichever part, none reaches the
// bundle, encrypted and opened again as the vendor would.
func TestNoPlantedSecretSurvives(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	for round := range rounds {
		g := redacttest.NewGen(uint64(round), rsaKey)
		ss := g.Secrets(t)
		src := func(name string) func(context.Context) ([]byte, error) {
			return func(context.Context) ([]byte, error) { return plant(name, ss), nil }
		}
		files := map[string][]byte{}
		o := Options{
			Status: src("status"), Image: src("image"), Diagnostics: src("diagnostics"),
			Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
				return plant(name+" "+strings.Join(args, " "), ss), nil
			},
			ReadFile: func(p string) ([]byte, error) {
				files[p] = nil
				return plant(p, ss), nil
			},
			ReadDir: func(string) ([]fs.DirEntry, error) {
				return []fs.DirEntry{fakeEntry("10-eth0.network"), fakeEntry("20-wg0.netdev")}, nil
			},
			ConfigFile: "/c/connector.yaml", NetworkDir: "/c/network", ResolvConf: "/r/resolv.conf", OSRelease: "/o/os-release", Cmdline: "/p/cmdline",
		}
		b, err := Collect(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := b.Encrypt(id.Recipient().String())
		if err != nil {
			t.Fatal(err)
		}
		back, err := Open(bytes.NewReader(ct), id)
		if err != nil {
			t.Fatal(err)
		}
		man, _ := json.Marshal(back.Manifest)
		all := append(back.Parts, Part{Name: ManifestName, Data: man})
		if len(back.Parts) < 20 {
			t.Fatalf("round %d: %d parts, want every source", round, len(back.Parts))
		}
		for _, p := range all {
			norm := redacttest.Normalise(p.Data)
			for _, s := range ss {
				for _, n := range s.Needles {
					if bytes.Contains(p.Data, []byte(n)) {
						t.Errorf("round %d: part %s still holds the %s (%q)", round, p.Name, s.Kind, n)
					}
				}
				if s.Token != "" && strings.Contains(norm, s.Token) {
					t.Errorf("round %d: part %s still holds the %s (in some spelling)", round, p.Name, s.Kind)
				}
			}
			if p.Name != ManifestName && !bytes.Contains(p.Data, []byte("ordinary line after")) {
				t.Errorf("round %d: part %s lost the text around the secrets:\n%s", round, p.Name, p.Data)
			}
		}
		for _, info := range back.Manifest.Parts {
			if info.Redactions < len(ss) {
				t.Errorf("round %d: part %s counts %d redactions, %d secrets were planted", round, info.Name, info.Redactions, len(ss))
			}
		}
	}
}

type fakeEntry string

func (f fakeEntry) Name() string               { return string(f) }
func (f fakeEntry) IsDir() bool                { return false }
func (f fakeEntry) Type() fs.FileMode          { return 0 }
func (f fakeEntry) Info() (fs.FileInfo, error) { return nil, fs.ErrNotExist }
