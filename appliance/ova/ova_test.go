package ova

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vaultpam/appliance/appliance/ovf"
)

// testDisk is a small raw disk with random data in a few grains.
func testDisk(t testing.TB, size int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	b := make([]byte, size)
	for range 8 {
		off := rng.IntN(size - 4096)
		for i := off; i < off+4096; i++ {
			b[i] = byte(rng.Uint32())
		}
	}
	return b
}

func testConfig(t testing.TB) *Config {
	oc := ovf.DefaultConfig()
	oc.Version, oc.FullVersion = "1.2.3", "1.2.3"
	return &Config{Name: "vaultpam-connector-1.2.3", OVF: oc, ModTime: time.Unix(1767225600, 0), TempDir: t.TempDir()}
}

type member struct {
	hdr  *tar.Header
	data []byte
}

func readMembers(t testing.TB, r io.Reader) []member {
	t.Helper()
	tr := tar.NewReader(r)
	var out []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading ova: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{h, data})
	}
}

func TestBuildStructure(t *testing.T) {
	raw := testDisk(t, 8<<20)
	var out bytes.Buffer
	res, err := Build(context.Background(), &out, bytes.NewReader(raw), int64(len(raw)), testConfig(t))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if res.Size != int64(out.Len()) {
		t.Errorf("Result.Size = %d, wrote %d", res.Size, out.Len())
	}
	if sum := sha256.Sum256(out.Bytes()); hex.EncodeToString(sum[:]) != res.SHA256 {
		t.Errorf("Result.SHA256 does not match the bytes written")
	}
	// ustar: the magic is "ustar\x0000" at offset 257 of every header.
	if got := string(out.Bytes()[257:265]); got != "ustar\x0000" {
		t.Errorf("tar magic = %q, want ustar", got)
	}
	ms := readMembers(t, bytes.NewReader(out.Bytes()))
	var names []string
	for _, m := range ms {
		names = append(names, m.hdr.Name)
		if m.hdr.Format != tar.FormatUSTAR && m.hdr.Format != tar.FormatUnknown {
			t.Errorf("%s: format %v, want ustar", m.hdr.Name, m.hdr.Format)
		}
		if m.hdr.Mode != 0o644 || !m.hdr.ModTime.Equal(time.Unix(1767225600, 0)) {
			t.Errorf("%s: mode %o mtime %v", m.hdr.Name, m.hdr.Mode, m.hdr.ModTime)
		}
	}
	want := []string{"vaultpam-connector-1.2.3.ovf", "vaultpam-connector-1.2.3.mf", "vaultpam-connector-1.2.3-disk1.vmdk"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("members (-want +got):\n%s", diff)
	}

	// Manifest lines are exactly "SHA256(name)= hex" and match the members.
	mf := string(ms[1].data)
	lineRE := regexp.MustCompile(`^SHA256\([^ ()]+\)= [0-9a-f]{64}$`)
	lines := strings.Split(strings.TrimSuffix(mf, "\n"), "\n")
	if len(lines) != 2 {
		t.Errorf("manifest has %d lines, want 2:\n%s", len(lines), mf)
	}
	for _, l := range lines {
		if !lineRE.MatchString(l) {
			t.Errorf("manifest line %q is not SHA256(name)= hex", l)
		}
	}
	entries, err := ParseManifest(strings.NewReader(mf))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		m := ms[[]int{0, 2}[i]]
		sum := sha256.Sum256(m.data)
		if e.Name != m.hdr.Name || e.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("manifest entry %+v does not match member %s (sha256 %x)", e, m.hdr.Name, sum)
		}
	}

	// ovf:size equals the VMDK member's size; capacity the raw size.
	desc := string(ms[0].data)
	if !bytes.Equal(ms[0].data, res.Descriptor) {
		t.Error("the .ovf member differs from Result.Descriptor")
	}
	size := regexp.MustCompile(`ovf:size="(\d+)"`).FindStringSubmatch(desc)
	if size == nil || size[1] != strconv.Itoa(len(ms[2].data)) {
		t.Errorf("ovf:size = %v, vmdk member is %d bytes", size, len(ms[2].data))
	}
	if !strings.Contains(desc, `ovf:capacity="`+strconv.Itoa(len(raw))+`"`) {
		t.Errorf("descriptor lacks ovf:capacity=%d", len(raw))
	}
	if !bytes.Contains(ms[2].data[512:1024], []byte(`RW 16384 SPARSE "vaultpam-connector-1.2.3-disk1.vmdk"`)) {
		t.Errorf("vmdk descriptor lacks the extent line:\n%s", ms[2].data[512:1024])
	}

	// Same input, same bytes.
	var again bytes.Buffer
	if _, err := Build(context.Background(), &again, bytes.NewReader(raw), int64(len(raw)), testConfig(t)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Error("two builds of the same disk differ")
	}
}

func TestBuildFile(t *testing.T) {
	dir := t.TempDir()
	raw := testDisk(t, 2<<20)
	diskPath := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(diskPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(dir, "x.ova")
	cfg := testConfig(t)
	cfg.TempDir = ""
	res, err := BuildFile(context.Background(), outPath, diskPath, cfg)
	if err != nil {
		t.Fatalf("BuildFile: %v", err)
	}
	fi, err := os.Stat(outPath)
	if err != nil || fi.Size() != res.Size {
		t.Fatalf("stat %s = %v, %v; want %d bytes", outPath, fi, err, res.Size)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	if _, err := BuildFile(context.Background(), outPath, filepath.Join(dir, "missing.raw"), cfg); err == nil {
		t.Error("BuildFile(missing disk) = nil error")
	}
}

func TestConfigValidate(t *testing.T) {
	err := (&Config{Name: "../evil"}).Validate()
	if err == nil || !strings.Contains(err.Error(), `name "../evil"`) || !strings.Contains(err.Error(), "ovf: missing") {
		t.Errorf("Validate() = %v, want name and ovf problems", err)
	}
	if _, err := Build(context.Background(), io.Discard, bytes.NewReader(nil), 512, nil); err == nil {
		t.Error("Build(nil config) = nil error")
	}
}

func TestParseManifestRejects(t *testing.T) {
	for _, bad := range []string{
		"SHA256 (a.ovf) = " + strings.Repeat("0", 64) + "\n",
		"SHA1(a.ovf)= " + strings.Repeat("0", 40) + "\n",
		"SHA256(a.ovf)=" + strings.Repeat("0", 64) + "\n",
	} {
		if _, err := ParseManifest(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseManifest(%q) = nil error", bad)
		}
	}
}
