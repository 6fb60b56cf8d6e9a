package ova

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/vaultpam/appliance/appliance/ova"
	"github.com/vaultpam/appliance/appliance/ovf"
	"github.com/vaultpam/appliance/appliance/vmdk"
)

// BuilderID identifies artifacts of this post-processor.
const BuilderID = "vaultpam.ova"

// PostProcessor is the vaultpam-ova post-processor.
type PostProcessor struct {
	config Config
	// publisher signs the manifest as NAME.cert; nil without
	// publisher_key_file.
	publisher *ova.Publisher
}

// New returns the post-processor for plugin registration.
func New() *PostProcessor { return &PostProcessor{} }

// ConfigSpec describes the HCL2 block.
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure decodes and validates the configuration.
func (p *PostProcessor) Configure(raws ...any) error {
	if err := p.config.decode(raws...); err != nil {
		return fmt.Errorf("vaultpam-ova: %w", err)
	}
	if p.config.PublisherKeyFile == "" {
		return nil
	}
	// Load and check now, so a wrong key or an expired certificate fails
	// before the image is built, not after.
	pub, err := ova.LoadPublisher(p.config.PublisherKeyFile, p.config.PublisherCertFile)
	if err == nil {
		_, err = pub.Check(time.Now())
	}
	if err != nil {
		return fmt.Errorf("vaultpam-ova: publisher_key_file/publisher_cert_file: %w\nhint: fix the key or certificate, or unset both to build without a VMware .cert", err)
	}
	p.publisher = pub
	return nil
}

// PostProcess builds the OVA from the input artifact's raw disk. It keeps
// the input artifact: the raw disk is the build cache the tests and the
// next build use.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	c := p.config
	disk, _ := in.State("disk").(string)
	if disk == "" {
		for _, f := range in.Files() {
			if strings.HasSuffix(f, ".raw") || strings.HasSuffix(f, ".img") {
				disk = f
				break
			}
		}
	}
	if disk == "" {
		return nil, true, false, fmt.Errorf("vaultpam-ova: the input artifact has no raw disk (files: %v)\nhint: use the vaultpam-appliance builder as the source", in.Files())
	}
	version := c.Version
	if version == "" {
		version, _ = in.State("version").(string)
	}
	if version == "" {
		return nil, true, false, fmt.Errorf("vaultpam-ova: no version: set version in the post-processor or use an artifact that carries one")
	}

	f, err := os.Open(disk)
	if err != nil {
		return nil, true, false, fmt.Errorf("vaultpam-ova: opening the disk: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, true, false, fmt.Errorf("vaultpam-ova: opening the disk: %w", err)
	}
	capacity := fi.Size()
	if c.DiskSizeMiB > 0 {
		want := c.DiskSizeMiB * MiB
		if want < fi.Size() {
			return nil, true, false, fmt.Errorf("vaultpam-ova: disk_size_mib %d is smaller than the image (%d MiB)\nhint: set disk_size_mib to at least %d or 0 for the image's size",
				c.DiskSizeMiB, (fi.Size()+MiB-1)/MiB, (fi.Size()+MiB-1)/MiB)
		}
		capacity = want
	}

	oc := ovf.DefaultConfig()
	oc.Name = c.VMName
	oc.Version = version
	oc.FullVersion = version
	if rh, _ := in.State("root_hash").(string); rh != "" {
		oc.FullVersion = fmt.Sprintf("%s (root hash %s)", version, rh)
	}
	oc.CPUs = c.CPUs
	oc.MemoryMiB = c.MemoryMiB
	oc.Network = c.Network
	vc := vmdk.DefaultConfig()
	vc.Level = c.CompressionLevel
	name := fmt.Sprintf("%s-%s", c.VMName, version)
	cfg := &ova.Config{Name: name, OVF: oc, VMDK: vc, ModTime: time.Unix(c.SourceDateEpoch, 0), Publisher: p.publisher}
	if err := cfg.Validate(); err != nil {
		return nil, true, false, fmt.Errorf("vaultpam-ova: %w", err)
	}
	if err := os.MkdirAll(c.OutputDir, 0o755); err != nil {
		return nil, true, false, fmt.Errorf("vaultpam-ova: %w", err)
	}
	out := filepath.Join(c.OutputDir, name+".ova")
	ui.Say(fmt.Sprintf("Writing %s from %s (%d MiB raw, %d MiB virtual disk)...", out, disk, fi.Size()>>20, capacity>>20))
	start := time.Now()
	res, err := buildPadded(ctx, out, f, fi.Size(), capacity, cfg)
	if err != nil {
		return nil, true, false, fmt.Errorf("vaultpam-ova: %w", err)
	}
	secs := time.Since(start).Seconds()
	for _, w := range res.Warnings {
		ui.Error("Warning: " + w)
	}
	if res.CertName != "" {
		leaf := p.publisher.Chain[0]
		ui.Say(fmt.Sprintf("Signed %s as %s for publisher %s (certificate valid until %s)",
			res.ManifestName, res.CertName, leaf.Subject, leaf.NotAfter.UTC().Format(time.DateOnly)))
	}
	ui.Say(fmt.Sprintf("OVA %s: %d MiB (VMDK %d MiB, %d grains, %.0f MiB/s of raw disk), sha256 %s",
		out, res.Size>>20, res.Disk.Size>>20, res.Disk.Grains, float64(fi.Size())/MiB/secs, res.SHA256))

	a := &Artifact{Path: out, Result: res, Version: version}
	a.DpkgStatus, _ = in.State("dpkg_status").(string)
	a.RootHash, _ = in.State("root_hash").(string)
	return a, true, false, nil
}

// buildPadded writes the OVA for size bytes of r followed by zeros up to
// capacity, atomically at out.
func buildPadded(ctx context.Context, out string, r io.Reader, size, capacity int64, cfg *ova.Config) (*ova.Result, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	c := *cfg
	c.TempDir = filepath.Dir(out)
	in := io.MultiReader(io.LimitReader(r, size), io.LimitReader(zeros{}, capacity-size))
	res, err := ova.Build(ctx, tmp, in, capacity, &c)
	if err != nil {
		return nil, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, err
	}
	return res, nil
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
