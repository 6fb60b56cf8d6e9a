package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// parts writes three part files of the given sizes with random bytes.
func parts(t *testing.T, sizes ...int) []Source {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	var out []Source
	for i, name := range PartOrder {
		b := make([]byte, sizes[i])
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, Source{Name: name, Path: p})
	}
	return out
}

func manifest() Manifest {
	return Manifest{Version: "0.2.0", RootHash: strings.Repeat("ab", 32), VerityUUID: "0d6f2a4e-1b7c-4e8a-9c3d-5f6a7b8c9d0e", SourceDateEpoch: 1767225600}
}

func write(t *testing.T) (string, *Manifest, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "b.update")
	m, digest, err := WriteFile(out, manifest(), parts(t, 300<<10, 5000, 70<<10))
	if err != nil {
		t.Fatal(err)
	}
	return out, m, digest
}

func TestRoundTrip(t *testing.T) {
	out, m, digest := write(t)
	f, _ := os.Open(out)
	defer f.Close()
	got, err := Check(f, digest)
	if err != nil {
		t.Fatalf("Check = %v", err)
	}
	if got.Version != "0.2.0" || len(got.Parts) != 3 || got.Parts[0] != m.Parts[0] {
		t.Errorf("manifest read back = %+v, want %+v", got, m)
	}
	// tar sees the same members, in order.
	f.Seek(0, 0)
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if strings.Join(names, " ") != "manifest.json root.squashfs root.verity uki.efi" {
		t.Errorf("members = %v", names)
	}
}

func TestDeterministic(t *testing.T) {
	src := parts(t, 1000, 1000, 1000)
	var sums []string
	for range 2 {
		out := filepath.Join(t.TempDir(), "b.update")
		if _, _, err := WriteFile(out, manifest(), src); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out)
		sums = append(sums, Digest(b))
	}
	if sums[0] != sums[1] {
		t.Errorf("two writes of the same parts differ: %s %s", sums[0], sums[1])
	}
}

// TestFlippedByte: one flipped byte in a tar header, the manifest or any
// part is refused as damaged (headers by their checksum, the manifest by
// its signed digest, a part by its digest). Bytes that carry nothing (tar
// padding) are covered by the whole file's digest in the signed metadata,
// which installing checks too.
func TestFlippedByte(t *testing.T) {
	out, m, digest := write(t)
	orig, _ := os.ReadFile(out)
	at := dataOffsets(t, orig)
	root := int(m.Parts[0].Size)
	for _, off := range []int{10, at[ManifestName] + 20, at[PartRoot] - 300, at[PartRoot] + 5, at[PartRoot] + root/2,
		at[PartRoot] + root - 1, at[PartVerity] + 100, at[PartUKI] - 500, at[PartUKI] + 1000} {
		b := bytes.Clone(orig)
		b[off] ^= 0x40
		_, err := Check(bytes.NewReader(b), digest)
		if !errors.Is(err, ErrDamaged) {
			t.Errorf("flip at %d: Check = %v, want ErrDamaged", off, err)
		}
	}
}

func TestRefusals(t *testing.T) {
	out, _, digest := write(t)
	orig, _ := os.ReadFile(out)
	for name, tc := range map[string]struct {
		data   []byte
		digest string
		want   string
	}{
		"wrong signed digest": {orig, strings.Repeat("0", 64), "the signed update metadata says"},
		"truncated":           {orig[:len(orig)/2], digest, "ends"},
		"empty":               {nil, digest, "no manifest"},
		"trailing member":     {appendMember(t, orig, "extra", []byte("x")), digest, "after the last part"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Check(bytes.NewReader(tc.data), tc.digest)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want ErrDamaged mentioning %q", err, tc.want)
			}
		})
	}
}

func TestManifestValidate(t *testing.T) {
	m := Manifest{Format: 2, Compatible: "other/arm64", Version: "0.2.0-rc1", RootHash: "xyz", VerityUUID: "nope",
		Parts: []Part{{Name: "uki.efi", Size: -1, SHA256: "0"}}}
	err := m.Validate()
	for _, want := range []string{"format 2", "other/arm64", "0.2.0-rc1", "root hash", "verity UUID", "has 1 parts"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to mention %q", err, want)
		}
	}
}

// TestPartsMustBeReadInOrder: Next refuses to move on from a part not read
// to its end, so no caller can skip a digest check.
func TestPartsMustBeReadInOrder(t *testing.T) {
	out, _, digest := write(t)
	f, _ := os.Open(out)
	defer f.Close()
	r, err := NewReader(f, digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "not read to its end") {
		t.Errorf("Next after an unread part = %v", err)
	}
}

func appendMember(t *testing.T, bundle []byte, name string, data []byte) []byte {
	t.Helper()
	// Rewrite the archive with one more member (tar's end marker moves).
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(bundle))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(data)), Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write(data)
	tw.Close()
	return buf.Bytes()
}

// dataOffsets returns where each member's data starts in a tar archive.
func dataOffsets(t *testing.T, b []byte) map[string]int {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(b)}
	tr := tar.NewReader(cr)
	out := map[string]int{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = cr.n
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
