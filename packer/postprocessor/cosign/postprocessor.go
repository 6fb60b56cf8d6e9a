// Package cosign is the Packer post-processor vaultpam-cosign: it signs the
// OVA made by vaultpam-ova (or the update ISO made by vaultpam-update) with
// a cosign-compatible key and writes, into the dist directory, F.sig and
// F.sigstore.json, the SBOM NAME-VERSION.spdx.json (+ .sig,
// .sigstore.json), cosign.pub, SHA256SUMS and SHA256SUMS.sig, so users can
// check the download with `cosign verify-blob` and `sha256sum -c`.
// SHA256SUMS lists every file in the dist directory signed with the same
// key: every version's OVA, bundle and ISO. See signing/README.md.
package cosign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/vaultpam/appliance/signing"
	"github.com/vaultpam/appliance/signing/sbom"
)

// BuilderID identifies artifacts made by this post-processor.
const BuilderID = "vaultpam.post-processor.cosign"

// PostProcessor implements packersdk.PostProcessor. The zero value is not
// configured; use New and Configure.
type PostProcessor struct {
	config Config

	// LookupEnv reads COSIGN_PASSWORD and SOURCE_DATE_EPOCH; os.LookupEnv
	// when nil.
	LookupEnv func(string) (string, bool)
	// Now is used when SOURCE_DATE_EPOCH is unset; time.Now when nil.
	Now func() time.Time
}

// New returns an unconfigured post-processor, for
// plugin.Set.RegisterPostProcessor("cosign", cosign.New()).
func New() *PostProcessor { return &PostProcessor{} }

var _ packersdk.PostProcessor = (*PostProcessor)(nil)

// ConfigSpec returns the HCL2 spec of Config.
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure decodes and checks the template's configuration.
func (p *PostProcessor) Configure(raws ...interface{}) error {
	p.config = Config{}
	err := config.Decode(&p.config, &config.DecodeOpts{
		PluginType:         BuilderID,
		Interpolate:        true,
		InterpolateContext: &p.config.ctx,
		InterpolateFilter:  &interpolate.RenderFilter{},
	}, raws...)
	if err != nil {
		return err
	}
	// HCL2 hands every option over, unset ones as zero values, so defaults
	// fill what is still empty after decoding.
	def := DefaultConfig()
	if p.config.DistDir == "" {
		p.config.DistDir = def.DistDir
	}
	if p.config.Name == "" {
		p.config.Name = def.Name
	}
	return p.config.Validate()
}

func (p *PostProcessor) lookupEnv(k string) (string, bool) {
	if p.LookupEnv != nil {
		return p.LookupEnv(k)
	}
	return os.LookupEnv(k)
}

// signedSuffixes are the suffixes of the input files this post-processor signs:
// the OVA (vaultpam-ova) and the update ISO (vaultpam-update). The update
// bundle is signed by vaultpam-update itself (the ISO carries its
// signature); it is listed in SHA256SUMS with every other file in dist_dir
// signed with the same key.
var signedSuffixes = []string{".ova", ".iso"}

// PostProcess signs the input artifact's .ova and .iso files. It keeps the
// input artifact (the OVA is part of the release) and returns an artifact
// listing the signed files and every file written.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	var files []string
	for _, f := range in.Files() {
		for _, suffix := range signedSuffixes {
			if strings.HasSuffix(f, suffix) {
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 {
		return nil, true, true, fmt.Errorf("vaultpam-cosign: the input artifact has no .ova or .iso file (files: %v); put vaultpam-ova or vaultpam-update before vaultpam-cosign", in.Files())
	}
	version := p.config.Version
	if version == "" {
		version, _ = in.State("version").(string)
	}
	dpkg := p.config.SBOMSource
	if dpkg == "" {
		dpkg, _ = in.State("dpkg_status").(string)
	}
	sde, _ := p.lookupEnv("SOURCE_DATE_EPOCH")
	now := p.Now
	if now == nil {
		now = time.Now
	}
	created, err := signing.SourceDateEpoch(sde, now)
	if err != nil {
		return nil, true, true, fmt.Errorf("vaultpam-cosign: %w", err)
	}
	cfg := signing.ReleaseConfig{
		Key:        p.config.Key,
		Password:   signing.EnvPassword(p.lookupEnv),
		DistDir:    p.config.DistDir,
		Files:      files,
		DpkgStatus: dpkg,
		SBOM: sbom.Config{
			Name: p.config.Name, Version: version, Created: created,
			Tool: "vaultpam-cosign",
			Components: []sbom.Component{{
				Name: "github.com/vaultpam/appliance", Version: "v" + strings.TrimPrefix(version, "v"),
				PURL: "pkg:golang/github.com/vaultpam/appliance@v" + strings.TrimPrefix(version, "v"),
			}},
		},
		Warn: uiWriter{ui},
		// make packages signs into the same dist/: one SHA256SUMS lists
		// both builds' artifacts, whichever ran last.
		KeepSigned: true,
	}
	if dpkg == "" {
		ui.Error("WARNING: no SBOM: set sbom_source to the image's dpkg status (build/dpkg-status)")
	} else if version == "" {
		return nil, true, true, errors.New("vaultpam-cosign: version is not set and the input artifact has no \"version\"; set version in the post-processor block")
	}
	if p.config.Key == "" {
		ui.Say("vaultpam-cosign: signing with a development key")
	} else if signing.IsKMSRef(p.config.Key) {
		ui.Say("vaultpam-cosign: signing with KMS key " + p.config.Key)
	} else {
		ui.Say("vaultpam-cosign: signing with key file " + p.config.Key)
	}
	rel, err := signing.SignRelease(ctx, cfg)
	if err != nil {
		return nil, true, true, fmt.Errorf("vaultpam-cosign: %w%s", err, hint(err))
	}
	art := &Artifact{Dir: p.config.DistDir, Written: rel.Files, DevKey: rel.DevKey}
	for _, f := range files {
		art.Inputs = append(art.Inputs, filepath.Join(p.config.DistDir, filepath.Base(f)))
	}
	for _, f := range rel.Files {
		ui.Say("vaultpam-cosign: wrote " + filepath.Join(p.config.DistDir, f))
	}
	ui.Say(fmt.Sprintf("vaultpam-cosign: verify with: cd %s && cosign verify-blob --key cosign.pub --signature %s.sig --insecure-ignore-tlog %s",
		p.config.DistDir, filepath.Base(files[0]), filepath.Base(files[0])))
	return art, true, true, nil
}

// hint says what to do next for the errors a person can fix.
func hint(err error) string {
	switch {
	case errors.Is(err, signing.ErrNoPassword):
		return "\nhint: export COSIGN_PASSWORD with the key's password before running packer"
	case errors.Is(err, signing.ErrWrongPassword):
		return "\nhint: COSIGN_PASSWORD does not open this key; check it (it is never read from the template)"
	case errors.Is(err, signing.ErrUnknownKeyScheme), errors.Is(err, signing.ErrBadKMSReference):
		return "\nhint: set key to a cosign.key path or a KMS reference such as awskms:///alias/NAME"
	}
	return ""
}

// uiWriter sends warnings to the Packer UI's error stream, one line each.
type uiWriter struct{ ui packersdk.Ui }

func (w uiWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		w.ui.Error(l)
	}
	return len(b), nil
}
