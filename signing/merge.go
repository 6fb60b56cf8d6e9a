package signing

import (
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// signedOthers returns the digests of the files in dist that another build
// signed with the same key (each has a .sig that verifies with pub), other
// than those already in have: `make ova` and `make packages` write into one
// dist directory, and its SHA256SUMS lists what both made. Files whose .sig
// does not verify (another key, changed since) are returned in left with
// the reason, so the caller can say why they are not listed.
func signedOthers(dist string, pub crypto.PublicKey, have Sums) (Sums, []string, error) {
	ents, err := os.ReadDir(dist)
	if err != nil {
		return nil, nil, err
	}
	out := Sums{}
	var left []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") || strings.HasSuffix(n, SigSuffix) || strings.HasSuffix(n, BundleSuffix) ||
			n == SumsFile || n == PublicKeyFile || n == PrivateKeyFile {
			continue
		}
		if _, ok := have[n]; ok {
			continue
		}
		p := filepath.Join(dist, n)
		sigB64, err := os.ReadFile(p + SigSuffix)
		if err != nil {
			continue // not a signed artifact
		}
		d, err := DigestFile(p)
		if err != nil {
			return nil, nil, err
		}
		sig, err := decodeSigFile(sigB64)
		if err == nil {
			err = verifyDigestSig(pub, d.Sum, sig)
		}
		if err != nil {
			left = append(left, fmt.Sprintf("%s: its %s does not verify with this key (%v): rebuild it to have it listed", n, SigSuffix, err))
			continue
		}
		out[n] = d
	}
	sort.Strings(left)
	return out, left, nil
}

// lockDir takes an exclusive flock on the directory itself (no lock file
// beside the release), so two signing runs into one dist directory take
// turns. The returned function releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
