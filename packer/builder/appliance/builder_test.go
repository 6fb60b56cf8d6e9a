package appliance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/appliance/image"
)

func TestPrepare(t *testing.T) {
	bin := t.TempDir()
	b := New()
	if _, _, err := b.Prepare(map[string]any{"version": "1.0.0", "bin_dir": bin, "output_dir": "out"}); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	c := b.config
	if c.CacheDir != filepath.Join("out", "cache") || c.WorkDir != filepath.Join("out", "work") || c.DebianSuite != "bookworm" || c.SourceDateEpoch == 0 {
		t.Errorf("defaults = %+v", c)
	}
	_, _, err := New().Prepare(map[string]any{"bin_dir": filepath.Join(bin, "missing"), "source_date_epoch": -1})
	if err == nil {
		t.Fatal("Prepare(bad) = nil error")
	}
	for _, want := range []string{"version: must be set", "bin_dir", "run make build", "source_date_epoch -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// fakeBuild writes a small disk and manifest where image.Build would.
func fakeBuild(size int64, got *image.Options) BuildFunc {
	return func(_ context.Context, o image.Options) (*image.Result, error) {
		*got = o
		if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
			return nil, err
		}
		disk := filepath.Join(o.OutDir, "disk.raw")
		if err := os.WriteFile(disk, make([]byte, size), 0o644); err != nil {
			return nil, err
		}
		m := image.Manifest{Version: o.Rootfs.Version, RootHash: "ab12"}
		m.DiskSize = 1 << 20
		return &image.Result{Disk: disk, Manifest: filepath.Join(o.OutDir, "image.json"),
			DpkgStatus: filepath.Join(o.OutDir, "dpkg-status"), Image: m}, nil
	}
}

func TestRun(t *testing.T) {
	out := t.TempDir()
	b := New()
	var got image.Options
	b.Build = fakeBuild(1<<20, &got)
	root := filepath.Join(t.TempDir(), "root.json")
	os.WriteFile(root, []byte("{}"), 0o644)
	if _, _, err := b.Prepare(map[string]any{"version": "1.2.3", "bin_dir": t.TempDir(), "output_dir": out,
		"debian_mirror": "http://127.0.0.1:9/debian", "extra_cmdline": "quiet", "update_root": root}); err != nil {
		t.Fatal(err)
	}
	a, err := b.Run(context.Background(), packersdk.TestUi(t), &packersdk.MockHook{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got.OutDir != out || got.Rootfs.Version != "1.2.3" || got.Rootfs.Mirror != "http://127.0.0.1:9/debian" ||
		got.Rootfs.ExtraSources != nil || got.ExtraCmdline != "quiet" || got.Logf == nil || got.Rootfs.UpdateRoot != root {
		t.Errorf("image options = %+v", got)
	}
	disk := filepath.Join(out, "disk.raw")
	if a.BuilderId() != BuilderID || a.Id() != "ab12" || len(a.Files()) != 1 || a.Files()[0] != disk {
		t.Errorf("artifact %s files %v", a.Id(), a.Files())
	}
	for name, want := range map[string]any{"disk": disk, "version": "1.2.3", "root_hash": "ab12",
		"dpkg_status": filepath.Join(out, "dpkg-status"), "disk_size": int64(1 << 20)} {
		if got := a.State(name); got != want {
			t.Errorf("State(%q) = %v, want %v", name, got, want)
		}
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(disk); !os.IsNotExist(err) {
		t.Errorf("Destroy left %s", disk)
	}
}

// TestRunMissingUpdateRoot: a missing update root stops the build before
// the image is built, with the command that makes it.
func TestRunMissingUpdateRoot(t *testing.T) {
	b := New()
	var got image.Options
	b.Build = fakeBuild(1<<20, &got)
	if _, _, err := b.Prepare(map[string]any{"version": "1.2.3", "bin_dir": t.TempDir(), "output_dir": t.TempDir(),
		"update_root": filepath.Join(t.TempDir(), "update-repo", "root.json")}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Run(context.Background(), packersdk.TestUi(t), &packersdk.MockHook{})
	if err == nil || !strings.Contains(err.Error(), "vaultpam-sign update-init") || got.OutDir != "" {
		t.Errorf("Run = %v (image built: %v), want an update_root error with a hint, before building", err, got.OutDir != "")
	}
}

func TestRunFailures(t *testing.T) {
	for name, build := range map[string]BuildFunc{
		"build fails": func(context.Context, image.Options) (*image.Result, error) {
			return nil, errors.New("mmdebstrap failed")
		},
		"disk size differs from image.json": fakeBuild(4096, new(image.Options)),
	} {
		t.Run(name, func(t *testing.T) {
			b := New()
			b.Build = build
			if _, _, err := b.Prepare(map[string]any{"version": "1.2.3", "bin_dir": t.TempDir(), "output_dir": t.TempDir()}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Run(context.Background(), packersdk.TestUi(t), &packersdk.MockHook{}); err == nil {
				t.Error("Run = nil error")
			}
		})
	}
}
