package signing

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestDigestFileStreams hashes a 32 MiB file and checks that the bytes
// allocated stay far below the file size: the OVA is never read whole.
func TestDigestFileStreams(t *testing.T) {
	const size = 32 << 20
	f := filepath.Join(t.TempDir(), "big.ova")
	writeRandomFile(t, f, size)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d, err := DigestFile(f)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if d.Size != size {
		t.Errorf("Size = %d, want %d", d.Size, size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("DigestFile allocated %d bytes for a %d-byte file, want < 1 MiB (streaming)", alloc, size)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(b); d.Hex() != (Digest{Sum: want[:]}).Hex() {
		t.Errorf("DigestFile = %s, want %x", d.Hex(), want)
	}
}

// BenchmarkSignFile reports signing throughput (hashing dominates) for a
// 64 MiB OVA stand-in.
func BenchmarkSignFile(b *testing.B) {
	const size = 64 << 20
	dir := b.TempDir()
	kp, err := GenerateKeyPair(StaticPassword(nil))
	if err != nil {
		b.Fatal(err)
	}
	if err := WriteKeyPair(dir, kp); err != nil {
		b.Fatal(err)
	}
	sv, err := LoadSigner(context.Background(), filepath.Join(dir, PrivateKeyFile), StaticPassword(nil))
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewSigner(context.Background(), sv)
	if err != nil {
		b.Fatal(err)
	}
	f := filepath.Join(dir, "x.ova")
	fh, err := os.Create(f)
	if err != nil {
		b.Fatal(err)
	}
	if err := fh.Truncate(size); err != nil {
		b.Fatal(err)
	}
	fh.Close()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.SignFile(context.Background(), f); err != nil {
			b.Fatal(err)
		}
	}
}
