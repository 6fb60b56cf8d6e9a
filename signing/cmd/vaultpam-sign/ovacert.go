package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/vaultpam/appliance/appliance/ova"
)

// verifyOVAs checks each OVA in dir from the inside: its members against
// its .mf, and VMware's optional .cert (the publisher signature vSphere
// shows) against the .mf. It prints one line per check and returns how
// many passed. A missing .cert is not a failure; a bad one is.
func (a *app) verifyOVAs(dir string) (int, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.ova"))
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, p := range paths {
		name := filepath.Base(p)
		arc, err := ova.VerifyArchiveFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if arc.ManifestName == "" {
			errs = append(errs, fmt.Errorf("%s: %w: it has no .mf manifest", name, ova.ErrArchive))
			continue
		}
		fmt.Fprintf(a.Stdout, "OK  %s: members match %s\n", name, arc.ManifestName)
		n++
		if arc.CertName == "" {
			fmt.Fprintf(a.Stdout, "--  %s: no VMware .cert (optional)\n", name)
			continue
		}
		leaf := arc.Chain[0]
		fmt.Fprintf(a.Stdout, "OK  %s: %s signs %s; publisher %s, issued by %s, valid %s to %s\n",
			name, arc.CertName, arc.ManifestName, leaf.Subject, leaf.Issuer,
			leaf.NotBefore.UTC().Format(time.DateOnly), leaf.NotAfter.UTC().Format(time.DateOnly))
		n++
		if now := a.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			fmt.Fprintf(a.Stderr, "warning: %s: the publisher certificate is not valid today (%s); vSphere will show the publisher as not valid, the cosign signature above is not affected\n",
				name, now.UTC().Format(time.DateOnly))
		}
	}
	return n, errors.Join(errs...)
}
