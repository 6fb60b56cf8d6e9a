package signing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/atomicfile"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/vaultpam/appliance/signing/sbom"
)

// ReleaseConfig says what SignRelease signs and where it writes.
type ReleaseConfig struct {
	// Key is a cosign private key file or a KMS reference (KMSSchemes).
	// Empty means a development key pair in DistDir (see DevKey).
	Key string
	// Password returns the private key's password; nil means
	// COSIGN_PASSWORD (EnvPassword). A development key uses the password
	// when it returns one and the empty password when COSIGN_PASSWORD is
	// unset.
	Password PasswordFunc
	// DistDir receives every output. Required; created if missing.
	DistDir string
	// Files are the artifacts to sign (the OVA). A file outside DistDir is
	// copied into it, so SHA256SUMS can be checked there. At least one.
	Files []string
	// DpkgStatus is the image's copy of /var/lib/dpkg/status
	// (build/dpkg-status); empty means no SBOM.
	DpkgStatus string
	// SBOM describes the image; Name and Version also name the SBOM file
	// NAME-VERSION.spdx.json.
	SBOM sbom.Config
	// Warn receives warnings for people (the development key); nil
	// discards them.
	Warn io.Writer
	// KeepSigned also lists in SHA256SUMS every other file in DistDir that
	// has a .sig made with this key: the artifacts of another build into
	// the same directory (make ova and make packages, in either order,
	// leave one SHA256SUMS). Files signed with another key are left out
	// with a warning.
	KeepSigned bool
}

// Validate returns every problem in c; it does not touch the network.
func (c *ReleaseConfig) Validate() error {
	var errs []error
	if c.DistDir == "" {
		errs = append(errs, errors.New("dist dir is empty"))
	}
	if len(c.Files) == 0 {
		errs = append(errs, errors.New("no files to sign"))
	}
	for _, f := range c.Files {
		if st, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("file to sign: %w", err))
		} else if !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("file to sign %s is not a regular file", f))
		}
	}
	if c.Key != "" && IsKMSRef(c.Key) {
		if err := CheckKMSRef(c.Key); err != nil {
			errs = append(errs, err)
		}
	}
	if c.DpkgStatus != "" {
		if err := c.SBOM.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SBOMFileName is the SBOM's name in the dist dir.
func (c *ReleaseConfig) SBOMFileName() string {
	return c.SBOM.Name + "-" + c.SBOM.Version + ".spdx.json"
}

// Release is what SignRelease wrote.
type Release struct {
	PublicKeyPEM []byte
	DevKey       bool     // a development key signed this release
	Files        []string // every file written, relative to DistDir, sorted by write order
}

// DevKeyWarning is printed when no release key is configured.
const DevKeyWarning = `WARNING: no signing key configured: signed with a DEVELOPMENT key pair in %s.
WARNING: this is a development key, not for release: anyone with this build directory can sign with it.
WARNING: for a release, set a key (make ova SIGNING_KEY=…, the post-processor's "key" or vaultpam-sign --key): a cosign.key file or a KMS reference.`

// SignRelease signs the artifacts and writes, in DistDir: for each file
// F (and the SBOM) F.sig and F.sigstore.json; the SBOM; cosign.pub;
// SHA256SUMS (files, SBOM, cosign.pub) and SHA256SUMS.sig. Outputs are made
// in a staging directory and moved in only when all are made and verify;
// outputs of an earlier run are removed first, so a failure leaves no
// signature beside an artifact it does not belong to.
func SignRelease(ctx context.Context, cfg ReleaseConfig) (*Release, error) {
	names := make([]string, len(cfg.Files))
	for i, f := range cfg.Files {
		names[i] = filepath.Base(f)
	}
	var sbomName string
	if cfg.DpkgStatus != "" {
		sbomName = cfg.SBOMFileName()
	}
	if cfg.DistDir != "" {
		if err := os.MkdirAll(cfg.DistDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating dist dir: %w", err)
		}
		unlock, err := lockDir(cfg.DistDir)
		if err != nil {
			return nil, err
		}
		defer unlock()
		// Whatever happens next, no signature of an earlier build stays
		// beside this build's artifacts.
		removeOutputs(cfg.DistDir, names, sbomName)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	warn := cfg.Warn
	if warn == nil {
		warn = io.Discard
	}

	rel := &Release{}
	sv, devKey, err := ReleaseKey(ctx, cfg.Key, cfg.Password, cfg.DistDir, warn)
	if err != nil {
		return nil, err
	}
	rel.DevKey = devKey
	signer, err := NewSigner(ctx, sv)
	if err != nil {
		if IsKMSRef(cfg.Key) {
			return nil, fmt.Errorf("KMS key %s (credentials from %s): %w", cfg.Key, kmsEnvHint(cfg.Key), err)
		}
		return nil, err
	}
	rel.PublicKeyPEM, err = signer.PublicKeyPEM()
	if err != nil {
		return nil, err
	}

	stage, err := os.MkdirTemp(cfg.DistDir, ".vaultpam-sign-")
	if err != nil {
		return nil, fmt.Errorf("creating staging dir: %w", err)
	}
	defer os.RemoveAll(stage)
	sums := Sums{}
	var staged []string // names in stage, moved in this order
	sign := func(name string, d Digest) error {
		sig, err := signer.SignDigest(ctx, d)
		if err != nil {
			return err
		}
		if err := WriteSignatureFiles(filepath.Join(stage, name), sig); err != nil {
			return err
		}
		staged = append(staged, name+SigSuffix, name+BundleSuffix)
		return nil
	}
	for i, f := range cfg.Files {
		d, err := digestInto(f, cfg.DistDir, stage, names[i], &staged)
		if err != nil {
			return nil, err
		}
		sums[names[i]] = d
		if err := sign(names[i], d); err != nil {
			return nil, err
		}
	}
	if sbomName != "" {
		doc, err := makeSBOM(cfg)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(filepath.Join(stage, sbomName), doc, 0o644); err != nil {
			return nil, fmt.Errorf("writing SBOM: %w", err)
		}
		staged = append(staged, sbomName)
		d, err := DigestFile(filepath.Join(stage, sbomName))
		if err != nil {
			return nil, err
		}
		sums[sbomName] = d
		if err := sign(sbomName, d); err != nil {
			return nil, err
		}
	}
	if cfg.KeepSigned {
		others, left, err := signedOthers(cfg.DistDir, signer.PublicKey(), sums)
		if err != nil {
			return nil, fmt.Errorf("reading the other signed files in %s: %w", cfg.DistDir, err)
		}
		for n, d := range others {
			sums[n] = d
		}
		for _, l := range left {
			fmt.Fprintf(warn, "WARNING: not listed in %s: %s\n", SumsFile, l)
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(stage, PublicKeyFile), rel.PublicKeyPEM, 0o644); err != nil {
		return nil, fmt.Errorf("writing public key: %w", err)
	}
	staged = append(staged, PublicKeyFile)
	if sums[PublicKeyFile], err = DigestFile(filepath.Join(stage, PublicKeyFile)); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(stage, SumsFile), sums.Marshal(), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", SumsFile, err)
	}
	d, err := DigestFile(filepath.Join(stage, SumsFile))
	if err != nil {
		return nil, err
	}
	sig, err := signer.SignDigest(ctx, d)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(stage, SumsFile+SigSuffix), sig.Base64(), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s%s: %w", SumsFile, SigSuffix, err)
	}
	staged = append(staged, SumsFile, SumsFile+SigSuffix) // the signature goes in last

	for _, n := range staged {
		if err := os.Rename(filepath.Join(stage, n), filepath.Join(cfg.DistDir, n)); err != nil {
			removeOutputs(cfg.DistDir, names, sbomName)
			return nil, fmt.Errorf("moving %s into %s: %w", n, cfg.DistDir, err)
		}
		rel.Files = append(rel.Files, n)
	}
	if _, err := VerifyRelease(signer.PublicKey(), cfg.DistDir); err != nil {
		removeOutputs(cfg.DistDir, names, sbomName)
		return nil, fmt.Errorf("checking the signed release: %w", err)
	}
	return rel, nil
}

// removeOutputs deletes what SignRelease writes for these names, except
// the artifacts themselves and the key pair.
func removeOutputs(dist string, names []string, sbomName string) {
	var out []string
	for _, n := range append(append([]string(nil), names...), sbomName) {
		if n != "" {
			out = append(out, n+SigSuffix, n+BundleSuffix)
		}
	}
	if sbomName != "" {
		out = append(out, sbomName)
	}
	out = append(out, SumsFile+SigSuffix, SumsFile)
	for _, n := range out {
		os.Remove(filepath.Join(dist, n))
	}
}

// digestInto hashes f; when f is not already in dist, it is copied into
// the stage (hashing while copying) and name is added to staged.
func digestInto(f, dist, stage, name string, staged *[]string) (Digest, error) {
	if sameFile(f, filepath.Join(dist, name)) {
		return DigestFile(f)
	}
	in, err := os.Open(f)
	if err != nil {
		return Digest{}, fmt.Errorf("reading artifact: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(stage, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Digest{}, fmt.Errorf("copying artifact: %w", err)
	}
	defer out.Close()
	d, err := DigestReader(io.TeeReader(in, out))
	if err != nil {
		return Digest{}, fmt.Errorf("copying %s into the dist dir: %w", f, err)
	}
	if err := out.Close(); err != nil {
		return Digest{}, fmt.Errorf("copying %s into the dist dir: %w", f, err)
	}
	*staged = append(*staged, name)
	return d, nil
}

func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// ReleaseKey loads the release signing key: key (a cosign private key file
// or a KMS reference) or, when key is empty, the development key pair in
// dist, made on first use, with DevKeyWarning written to warn. One key signs
// everything a build writes into dist: the cosign signatures and the update
// repository's TUF metadata. isDev reports the development key.
func ReleaseKey(ctx context.Context, key string, pw PasswordFunc, dist string, warn io.Writer) (sv signature.SignerVerifier, isDev bool, err error) {
	if warn == nil {
		warn = io.Discard
	}
	if key == "" {
		if err := os.MkdirAll(dist, 0o755); err != nil {
			return nil, false, fmt.Errorf("creating dist dir: %w", err)
		}
		k, err := devKey(dist, pw, warn)
		if err != nil {
			return nil, true, err
		}
		sv, err := LoadSigner(ctx, k, devPassword(pw))
		if errors.Is(err, ErrWrongPassword) {
			return nil, true, fmt.Errorf("%w (the development key was made with another %s; delete %s and %s to make a new one)",
				err, PasswordEnv, k, filepath.Join(dist, PublicKeyFile))
		}
		return sv, true, err
	}
	sv, err = LoadSigner(ctx, key, pw)
	return sv, false, err
}

// devKey returns the path of the development key in dist, making the pair
// when it is not there yet.
func devKey(dist string, pw PasswordFunc, warn io.Writer) (string, error) {
	path := filepath.Join(dist, PrivateKeyFile)
	fmt.Fprintf(warn, DevKeyWarning+"\n", dist)
	if _, err := os.Stat(path); err == nil {
		fmt.Fprintf(warn, "WARNING: reusing the development key %s from an earlier build\n", path)
		return path, nil
	}
	kp, err := GenerateKeyPair(devPassword(pw))
	if err != nil {
		return "", err
	}
	if err := WriteKeyPair(dist, kp); err != nil {
		return "", err
	}
	return path, nil
}

// devPassword is pw, or COSIGN_PASSWORD, or the empty password when that
// is unset.
func devPassword(pw PasswordFunc) PasswordFunc {
	if pw == nil {
		pw = EnvPassword(nil)
	}
	return func() ([]byte, error) {
		p, err := pw()
		if errors.Is(err, ErrNoPassword) {
			return []byte{}, nil
		}
		return p, err
	}
}

func makeSBOM(cfg ReleaseConfig) ([]byte, error) {
	f, err := os.Open(cfg.DpkgStatus)
	if err != nil {
		return nil, fmt.Errorf("reading the image's package list for the SBOM: %w", err)
	}
	defer f.Close()
	pkgs, err := sbom.ParseDpkgStatus(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.DpkgStatus, err)
	}
	return sbom.SPDX(pkgs, cfg.SBOM)
}

// SourceDateEpoch parses SOURCE_DATE_EPOCH (seconds since 1970); empty
// means now().
func SourceDateEpoch(v string, now func() time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return now().UTC().Truncate(time.Second), nil
	}
	var sec int64
	if _, err := fmt.Sscan(v, &sec); err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
	}
	return time.Unix(sec, 0).UTC(), nil
}
