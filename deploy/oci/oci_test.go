package oci

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/vaultpam/appliance/deploy/internal/shapetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	shapetest.Cleanup()
	os.Exit(code)
}

var epoch = time.Unix(1767225600, 0).UTC()

func testConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.Binary = shapetest.Binary(t, shapetest.ConnectorPkg)
	c.Version = "0.0.0-test"
	c.Created = epoch
	if _, err := os.Stat(c.CABundle); err != nil {
		c.CABundle = filepath.Join(t.TempDir(), "ca.crt")
		os.WriteFile(c.CABundle, []byte("# no system CA bundle on this machine\n"), 0o644)
	}
	return c
}

func fileSHA(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Two builds of the same inputs give the same digest and the same tarball
// bytes; another SOURCE_DATE_EPOCH gives another digest.
func TestReproducibleDigest(t *testing.T) {
	c := testConfig(t)
	a, err := WriteArchive(c, filepath.Join(t.TempDir(), FileName(c.Version)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := WriteArchive(c, filepath.Join(t.TempDir(), FileName(c.Version)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != b.Digest {
		t.Errorf("digest of two builds: %s and %s", a.Digest, b.Digest)
	}
	if x, y := fileSHA(t, a.Path), fileSHA(t, b.Path); x != y {
		t.Errorf("tarball sha256 of two builds: %s and %s", x, y)
	}
	c.Created = c.Created.Add(time.Second)
	other, err := WriteArchive(c, filepath.Join(t.TempDir(), FileName(c.Version)))
	if err != nil {
		t.Fatal(err)
	}
	if other.Digest == a.Digest {
		t.Error("a different SOURCE_DATE_EPOCH gave the same digest: the time is not in the image")
	}
	t.Logf("image %s, tarball %d bytes, same digest twice", a.Digest, a.Size)
}

func TestConfigValidate(t *testing.T) {
	err := Config{}.Validate()
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, want := range []string{"binary is not set", "CA bundle is not set", "version is not set", "repository is not set", "created time"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, lacks %q", err, want)
		}
	}
}

// The archive is a valid OCI layout (read back with go-containerregistry
// and validated blob by blob) with Docker's manifest.json beside it; the
// image runs the connector as 65532 with /data as a volume.
func TestArchiveLayout(t *testing.T) {
	c := testConfig(t)
	res, err := WriteArchive(c, filepath.Join(t.TempDir(), FileName(c.Version)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	names := untar(t, res.Path, dir)
	for _, want := range []string{"oci-layout", "index.json", "manifest.json"} {
		if !names[want] {
			t.Errorf("archive lacks %s", want)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != res.Digest || im.Manifests[0].Annotations["io.containerd.image.name"] != c.Ref() {
		t.Fatalf("index.json = %+v; want one manifest %s named %s", im.Manifests, res.Digest, c.Ref())
	}
	img, err := idx.Image(res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	var docker []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	b, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err := json.Unmarshal(b, &docker); err != nil || len(docker) != 1 || len(docker[0].Layers) != 1 || docker[0].RepoTags[0] != c.Ref() {
		t.Fatalf("manifest.json = %s (%v)", b, err)
	}
	for _, p := range append([]string{docker[0].Config}, docker[0].Layers...) {
		if !names[p] {
			t.Errorf("manifest.json names %s, which is not in the archive", p)
		}
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != BinaryPath || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config = user %q entrypoint %q %s/%s", cf.Config.User, cf.Config.Entrypoint, cf.OS, cf.Architecture)
	}
	if _, ok := cf.Config.Volumes[DataDir]; !ok || len(cf.Config.Volumes) != 1 {
		t.Errorf("volumes = %v; want only %s", cf.Config.Volumes, DataDir)
	}
	if !cf.Created.Time.Equal(epoch) {
		t.Errorf("created = %s, want %s", cf.Created.Time, epoch)
	}
	env := map[string]bool{}
	for _, e := range cf.Config.Env {
		env[e] = true
	}
	for _, want := range []string{"PAM_AGENT_DATA_DIR=/data", "PAM_AGENT_SOCKET=/run/vaultpam/connector.sock"} {
		if !env[want] {
			t.Errorf("env lacks %s: %v", want, cf.Config.Env)
		}
	}
	for _, e := range cf.Config.Env {
		if strings.HasPrefix(e, "PAM_AGENT_CONFIG=") {
			t.Errorf("image sets %s: that turns the environment-only configuration off", e)
		}
		if strings.Contains(e, "TOKEN") {
			t.Errorf("image environment has %s: tokens come at run time", e)
		}
	}

	layers, _ := img.Layers()
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	want := map[string]struct {
		mode     int64
		uid, gid int
	}{
		"usr/bin/vaultpam-connector":        {0o755, 0, 0},
		"etc/ssl/certs/ca-certificates.crt": {0o644, 0, 0},
		"etc/passwd":                        {0o644, 0, 0},
		"data/":                             {0o700, UID, UID},
		"run/vaultpam/":                     {0o750, UID, UID},
		"config/":                           {0o755, 0, 0},
	}
	tr := tar.NewReader(rc)
	prev := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name < prev {
			t.Errorf("layer entries not sorted: %s after %s", h.Name, prev)
		}
		prev = h.Name
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s has time %s, want %s", h.Name, h.ModTime, epoch)
		}
		if w, ok := want[h.Name]; ok {
			if h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.gid {
				t.Errorf("%s: mode %o uid %d gid %d; want %o %d %d", h.Name, h.Mode, h.Uid, h.Gid, w.mode, w.uid, w.gid)
			}
			delete(want, h.Name)
		}
	}
	for n := range want {
		t.Errorf("layer lacks %s", n)
	}
}

func untar(t *testing.T, archive, dir string) map[string]bool {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, _ := io.ReadAll(tr)
		os.WriteFile(p, b, 0o644)
	}
}
