package vmdk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sparseDisk makes a raw disk of size bytes with random data in a few
// places: whole grains, partial grains, a zero grain between data, the very
// first and the very last sector.
func sparseDisk(t testing.TB, size int64, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, size)
	fill := func(off, n int64) {
		for i := off; i < off+n && i < size; i++ {
			b[i] = byte(rng.Uint32())
		}
	}
	fill(0, 512)
	fill(size-512, 512)
	for range 12 {
		off := rng.Int64N(size)
		fill(off, rng.Int64N(3*GrainSize))
	}
	// A compressible run: repeated text.
	copy(b[size/2:], bytes.Repeat([]byte("vaultpam "), 20000))
	return b
}

func writeDisk(t testing.TB, raw []byte, cfg *Config) ([]byte, Stats) {
	t.Helper()
	var out bytes.Buffer
	st, err := Write(context.Background(), &out, bytes.NewReader(raw), int64(len(raw)), cfg)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if st.Size != int64(out.Len()) {
		t.Fatalf("Stats.Size = %d, wrote %d bytes", st.Size, out.Len())
	}
	return out.Bytes(), st
}

func TestWriteStructure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int64
		workers int
	}{
		{"one sector", 512, 1},
		{"partial last grain", 3*GrainSize + 7*512, 2},
		{"few MiB", 6 << 20, 4},
		{"three grain tables", 70 << 20, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := sparseDisk(t, tc.size, uint64(tc.size))
			cfg := DefaultConfig()
			cfg.Workers = tc.workers
			vmdk, st := writeDisk(t, raw, cfg)
			p, err := parseStream(vmdk)
			if err != nil {
				t.Fatalf("parseStream: %v", err)
			}
			if got, want := p.header.Capacity, uint64(tc.size/SectorSize); got != want {
				t.Errorf("capacity = %d sectors, want %d", got, want)
			}
			// Every non-zero grain is stored, every zero grain skipped,
			// and the content matches.
			padded := make([]byte, (tc.size+GrainSize-1)/GrainSize*GrainSize)
			copy(padded, raw)
			stored := 0
			for i := 0; i < len(padded); i += GrainSize {
				g, ok := p.grains[uint64(i/SectorSize)]
				zero := isZero(padded[i : i+GrainSize])
				switch {
				case zero && ok:
					t.Errorf("zero grain at byte %d stored", i)
				case !zero && !ok:
					t.Errorf("grain at byte %d missing", i)
				case ok && !bytes.Equal(g, padded[i:i+GrainSize]):
					t.Errorf("grain at byte %d differs from the input", i)
				}
				if ok {
					stored++
				}
			}
			if st.Grains != stored || st.Grains+st.ZeroGrains != len(padded)/GrainSize {
				t.Errorf("Stats = %+v, stream holds %d of %d grains", st, stored, len(padded)/GrainSize)
			}
			for _, want := range []string{`createType="streamOptimized"`, `ddb.adapterType = "lsilogic"`,
				`ddb.toolsInstallType = "4"`, `ddb.toolsVersion = "2147483647"`, `ddb.virtualHWVersion = "4"`} {
				if !strings.Contains(p.descriptor, want) {
					t.Errorf("descriptor lacks %s:\n%s", want, p.descriptor)
				}
			}
		})
	}
}

func TestWriteDeterministic(t *testing.T) {
	raw := sparseDisk(t, 5<<20, 7)
	one := DefaultConfig()
	one.Workers = 1
	many := DefaultConfig()
	many.Workers = 8
	a, _ := writeDisk(t, raw, one)
	b, _ := writeDisk(t, raw, many)
	if !bytes.Equal(a, b) {
		t.Errorf("output with 1 and 8 workers differs")
	}
}

func TestWriteErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Write(ctx, io.Discard, bytes.NewReader(nil), 1000, nil); err == nil {
		t.Errorf("Write(size 1000) = nil error, want one about the sector size")
	}
	_, err := Write(ctx, io.Discard, bytes.NewReader(make([]byte, GrainSize)), 4*GrainSize, nil)
	if !errors.Is(err, errShortInput) {
		t.Errorf("Write(short input) = %v, want %v", err, errShortInput)
	}
	bad := DefaultConfig()
	bad.AdapterType = "pvscsi"
	bad.Level = 12
	err = bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "adapter type") || !strings.Contains(err.Error(), "compression level") {
		t.Errorf("Validate() = %v, want both problems named", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	raw := sparseDisk(t, 4<<20, 3)
	if _, err := Write(cctx, io.Discard, bytes.NewReader(raw), int64(len(raw)), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Write(cancelled) = %v, want context.Canceled", err)
	}
	w := &failWriter{after: 3}
	if _, err := Write(ctx, w, bytes.NewReader(raw), int64(len(raw)), nil); err == nil {
		t.Errorf("Write(failing writer) = nil error")
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(b []byte) (int, error) {
	if f.after == 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(b), nil
}

// TestQemuImg reads the VMDK back with QEMU's independent implementation.
func TestQemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils)")
	}
	dir := t.TempDir()
	for i, size := range []int64{3 << 20, 40<<20 + 512} {
		raw := sparseDisk(t, size, uint64(i+100))
		vmdk, _ := writeDisk(t, raw, nil)
		rawPath := filepath.Join(dir, "disk.raw")
		vmdkPath := filepath.Join(dir, "disk.vmdk")
		if err := os.WriteFile(rawPath, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vmdkPath, vmdk, 0o644); err != nil {
			t.Fatal(err)
		}
		qemuCheck(t, rawPath, vmdkPath)
	}
}

func qemuCheck(t *testing.T, rawPath, vmdkPath string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", "check", "-f", "vmdk", vmdkPath).CombinedOutput(); err != nil {
		t.Errorf("qemu-img check: %v\n%s", err, out)
	}
	out, err := exec.Command("qemu-img", "info", "-f", "vmdk", vmdkPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "create type: streamOptimized") {
		t.Errorf("qemu-img info: %v\n%s", err, out)
	}
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "vmdk", rawPath, vmdkPath).CombinedOutput(); err != nil {
		t.Errorf("qemu-img compare: %v\n%s", err, out)
	}
}

// TestApplianceDisk converts the real appliance disk when the image build
// left one (make image).
func TestApplianceDisk(t *testing.T) {
	rawPath := os.Getenv("VAULTPAM_DISK")
	if rawPath == "" {
		t.Skip("VAULTPAM_DISK not set (make test sets it after make image)")
	}
	f, err := os.Open(rawPath)
	if err != nil {
		t.Skipf("no appliance disk: %v (run make image)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	vmdkPath := filepath.Join(t.TempDir(), "disk.vmdk")
	out, err := os.Create(vmdkPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Write(context.Background(), out, f, fi.Size(), nil)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d MiB raw → %d MiB vmdk, %d grains stored, %d zero", rawPath, fi.Size()>>20, st.Size>>20, st.Grains, st.ZeroGrains)
	b, err := os.ReadFile(vmdkPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseStream(b); err != nil {
		t.Errorf("parseStream: %v", err)
	}
	qemuCheck(t, rawPath, vmdkPath)
}

// BenchmarkWrite reports MiB/s of raw input. Use -cpu 2 for the 2-core
// figure. VAULTPAM_DISK, when present, is used as input (up to 1 GiB of it,
// held in memory); otherwise a synthetic half-random, half-zero disk.
func BenchmarkWrite(b *testing.B) {
	raw := benchInput(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Write(context.Background(), io.Discard, bytes.NewReader(raw), int64(len(raw)), nil); err != nil {
			b.Fatal(err)
		}
	}
}

func benchInput(b *testing.B) []byte {
	if p := os.Getenv("VAULTPAM_DISK"); p != "" {
		if f, err := os.Open(p); err == nil {
			defer f.Close()
			raw := make([]byte, 1<<30)
			n, _ := io.ReadFull(f, raw)
			return raw[:n/SectorSize*SectorSize]
		}
	}
	raw := make([]byte, 128<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	// Text-like compressible data in the first half, zeros after.
	words := []string{"vaultpam ", "connector ", "systemd ", "kernel ", "\x00\x00\x00\x00", "tunnel "}
	for off := 0; off < len(raw)/2; {
		off += copy(raw[off:len(raw)/2], words[rng.IntN(len(words))])
	}
	return raw
}
