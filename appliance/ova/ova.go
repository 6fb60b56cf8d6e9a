// Package ova packages the appliance disk as an OVA that vSphere imports:
// a ustar archive whose first member is the .ovf descriptor, then the .mf
// manifest with `SHA256(name)= hex` lines, then (when a Publisher is
// configured) VMware's .cert signing the manifest, then the streamOptimized
// VMDK.
//
// The VMDK's size and digest go into the descriptor and manifest, which come
// first in the archive, so Build compresses the disk once into a temporary
// file, hashing it while it is written, and then streams the archive.
package ova

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"time"

	"github.com/vaultpam/appliance/appliance/ovf"
	"github.com/vaultpam/appliance/appliance/vmdk"
)

// Config says what goes into the OVA. A nil *Config is not accepted: Name
// and OVF have no defaults that would be right for a release.
type Config struct {
	// Name is the base name of the members: Name.ovf, Name.mf and
	// Name-disk1.vmdk, e.g. "vaultpam-connector-1.2.3".
	Name string
	// OVF describes the VM; its Disk field is filled in by Build.
	OVF *ovf.Config
	// VMDK controls the disk conversion; nil means vmdk.DefaultConfig().
	VMDK *vmdk.Config
	// ModTime is the modification time of every member; use
	// SOURCE_DATE_EPOCH for reproducible archives.
	ModTime time.Time
	// TempDir holds the temporary VMDK; "" means os.TempDir().
	TempDir string
	// Publisher, when set, signs the manifest into Name.cert so vSphere
	// shows the publisher. nil: no .cert.
	Publisher *Publisher
	// Now is the clock the publisher certificate's validity is checked
	// against; nil means time.Now.
	Now func() time.Time
}

// Result describes a built OVA.
type Result struct {
	OVFName, ManifestName, DiskName string
	CertName                        string // "" without a Publisher
	Descriptor                      []byte // the .ovf as written
	Manifest                        []byte // the .mf as written
	Cert                            []byte // the .cert as written, nil without a Publisher
	// Warnings about the publisher certificate (see Publisher.Check).
	Warnings   []string
	Disk       vmdk.Stats
	DiskSHA256 string
	Size       int64  // bytes of OVA written
	SHA256     string // of the whole OVA
}

var memberName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$`)

// Validate reports every problem with c.
func (c *Config) Validate() error {
	var errs []error
	if !memberName.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: want 1 to 81 of letters, digits, '.', '_', '-'", c.Name))
	}
	if c.OVF == nil {
		errs = append(errs, errors.New("ovf: missing VM description"))
	}
	if c.VMDK != nil {
		if err := c.VMDK.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("vmdk: %w", err))
		}
	}
	if c.Publisher != nil {
		if err := c.Publisher.checkKey(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Build converts diskSize bytes of raw disk from disk into an OVA written to
// out. out sees only sequential writes.
func Build(ctx context.Context, out io.Writer, disk io.Reader, diskSize int64, cfg *Config) (*Result, error) {
	if cfg == nil {
		return nil, errors.New("ova: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ova config: %w", err)
	}
	res := &Result{
		OVFName:      cfg.Name + ".ovf",
		ManifestName: cfg.Name + ".mf",
		DiskName:     cfg.Name + "-disk1.vmdk",
	}
	if cfg.Publisher != nil {
		// Before the slow part: an expired certificate fails at once.
		now := time.Now
		if cfg.Now != nil {
			now = cfg.Now
		}
		w, err := cfg.Publisher.Check(now())
		if err != nil {
			return nil, err
		}
		res.Warnings = w
		res.CertName = cfg.Name + ".cert"
	}
	vcfg := vmdk.DefaultConfig()
	if cfg.VMDK != nil {
		c := *cfg.VMDK
		vcfg = &c
	}
	vcfg.ExtentName = res.DiskName

	tmp, err := os.CreateTemp(cfg.TempDir, ".vaultpam-disk-*.vmdk")
	if err != nil {
		return nil, fmt.Errorf("creating temporary vmdk: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	h := sha256.New()
	st, err := vmdk.Write(ctx, io.MultiWriter(tmp, h), disk, diskSize, vcfg)
	if err != nil {
		return nil, fmt.Errorf("writing vmdk: %w", err)
	}
	res.Disk = st
	res.DiskSHA256 = hex.EncodeToString(h.Sum(nil))

	oc := *cfg.OVF
	oc.Disk = ovf.Disk{
		File:          res.DiskName,
		FileSize:      st.Size,
		Capacity:      st.Capacity,
		PopulatedSize: int64(st.Grains) * vmdk.GrainSize,
	}
	res.Descriptor, err = ovf.Descriptor(&oc)
	if err != nil {
		return nil, err
	}
	ovfSum := sha256.Sum256(res.Descriptor)
	res.Manifest = Manifest([]ManifestEntry{
		{Name: res.OVFName, SHA256: hex.EncodeToString(ovfSum[:])},
		{Name: res.DiskName, SHA256: res.DiskSHA256},
	})
	if cfg.Publisher != nil {
		if res.Cert, err = cfg.Publisher.Sign(res.ManifestName, res.Manifest); err != nil {
			return nil, err
		}
	}

	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewinding temporary vmdk: %w", err)
	}
	oh := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, oh)}
	tw := tar.NewWriter(cw)
	add := func(name string, size int64, r io.Reader) error {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name,
			Size:     size,
			Mode:     0o644,
			ModTime:  cfg.ModTime.UTC().Truncate(time.Second),
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing ova member %s: %w", name, err)
		}
		n, err := io.Copy(tw, r)
		if err != nil {
			return fmt.Errorf("writing ova member %s: %w", name, err)
		}
		if n != size {
			return fmt.Errorf("writing ova member %s: %d bytes, want %d", name, n, size)
		}
		return nil
	}
	if err := add(res.OVFName, int64(len(res.Descriptor)), bytesReader(res.Descriptor)); err != nil {
		return nil, err
	}
	if err := add(res.ManifestName, int64(len(res.Manifest)), bytesReader(res.Manifest)); err != nil {
		return nil, err
	}
	if res.Cert != nil {
		if err := add(res.CertName, int64(len(res.Cert)), bytesReader(res.Cert)); err != nil {
			return nil, err
		}
	}
	if err := add(res.DiskName, st.Size, tmp); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finishing ova: %w", err)
	}
	res.Size = cw.n
	res.SHA256 = hex.EncodeToString(oh.Sum(nil))
	return res, nil
}

// BuildFile builds the OVA at outPath from the raw disk at diskPath. The
// OVA appears atomically: it is written to a temporary file in the same
// directory and renamed when complete.
func BuildFile(ctx context.Context, outPath, diskPath string, cfg *Config) (*Result, error) {
	in, err := os.Open(diskPath)
	if err != nil {
		return nil, fmt.Errorf("opening raw disk: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return nil, fmt.Errorf("opening raw disk: %w", err)
	}
	c := *cfg
	if c.TempDir == "" {
		c.TempDir = path.Dir(outPath)
	}
	tmp, err := os.CreateTemp(path.Dir(outPath), "."+path.Base(outPath)+".*")
	if err != nil {
		return nil, fmt.Errorf("creating ova: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	res, err := Build(ctx, tmp, in, fi.Size(), &c)
	if err != nil {
		return nil, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("writing ova: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("writing ova: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("writing ova: %w", err)
	}
	if err := os.Rename(tmp.Name(), outPath); err != nil {
		return nil, fmt.Errorf("writing ova: %w", err)
	}
	return res, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
