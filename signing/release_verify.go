package signing

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// VerifyRelease checks a release directory the way the README tells users
// to: SHA256SUMS.sig over SHA256SUMS, then every file SHA256SUMS lists
// against its digest, then each file's own .sig and .sigstore.json where
// present. It returns every problem found (errors.Join), each wrapping one
// of the Err* values. checked lists what verified.
func VerifyRelease(pub crypto.PublicKey, dir string) (checked []string, err error) {
	sumsPath := filepath.Join(dir, SumsFile)
	sig, err := os.ReadFile(sumsPath + SigSuffix)
	if err != nil {
		return nil, fmt.Errorf("reading signature: %w", err)
	}
	if s, err := decodeSigFile(sig); err != nil {
		return nil, fmt.Errorf("%s%s: %w", sumsPath, SigSuffix, err)
	} else if d, err := DigestFile(sumsPath); err != nil {
		return nil, err
	} else if err := verifyDigestSig(pub, d.Sum, s); errors.Is(err, ErrSignatureMismatch) {
		return nil, fmt.Errorf("%s%s: %w: %s was changed after signing, or this public key is not the one that signed the release",
			sumsPath, SigSuffix, ErrSignatureMismatch, SumsFile)
	} else if err != nil {
		return nil, fmt.Errorf("%s%s: %w", sumsPath, SigSuffix, err)
	}
	checked = append(checked, SumsFile+SigSuffix)
	raw, err := os.ReadFile(sumsPath)
	if err != nil {
		return checked, err
	}
	sums, err := ParseSums(raw)
	if err != nil {
		return checked, err
	}
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		p := filepath.Join(dir, n)
		want := sums[n]
		sigPath := p + SigSuffix
		if _, statErr := os.Stat(sigPath); statErr == nil {
			if err := VerifySigFile(pub, p, sigPath, VerifyOptions{Expected: &want}); err != nil {
				errs = append(errs, err)
				continue
			}
			checked = append(checked, n+SigSuffix)
		} else {
			got, err := DigestFile(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if got.Hex() != want.Hex() {
				errs = append(errs, fmt.Errorf("%s: %w: it has %s, SHA256SUMS says %s; the file was changed or corrupted after signing (download it again)",
					p, ErrDigestMismatch, got, want))
				continue
			}
		}
		checked = append(checked, n)
		if _, statErr := os.Stat(p + BundleSuffix); statErr == nil {
			if err := VerifyBundleFile(pub, p, p+BundleSuffix); err != nil {
				errs = append(errs, err)
				continue
			}
			checked = append(checked, n+BundleSuffix)
		}
	}
	return checked, errors.Join(errs...)
}
