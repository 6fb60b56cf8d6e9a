package cosign

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Artifact is a signed release in a dist directory.
type Artifact struct {
	Dir     string
	Inputs  []string // the signed input files (OVA, update ISO), in Dir
	Written []string // files this post-processor wrote, relative to Dir
	DevKey  bool     // signed with a development key
}

// BuilderId implements packersdk.Artifact.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files lists the signed inputs and every file written.
func (a *Artifact) Files() []string {
	files := append([]string(nil), a.Inputs...)
	for _, f := range a.Written {
		p := filepath.Join(a.Dir, f)
		if !contains(files, p) {
			files = append(files, p)
		}
	}
	return files
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Id implements packersdk.Artifact.
func (a *Artifact) Id() string { return a.Dir }

// String describes the release for Packer's summary.
func (a *Artifact) String() string {
	key := "release key"
	if a.DevKey {
		key = "DEVELOPMENT key (not for release)"
	}
	return fmt.Sprintf("signed release in %s (%s): %s", a.Dir, key, strings.Join(a.Written, ", "))
}

// State returns "dev_key" (bool) and "dist_dir" (string).
func (a *Artifact) State(name string) interface{} {
	switch name {
	case "dev_key":
		return a.DevKey
	case "dist_dir":
		return a.Dir
	}
	return nil
}

// Destroy removes the files this post-processor wrote, not the signed
// inputs (they belong to the input artifact).
func (a *Artifact) Destroy() error {
	var errs []error
	for _, f := range a.Written {
		p := filepath.Join(a.Dir, f)
		if contains(a.Inputs, p) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
