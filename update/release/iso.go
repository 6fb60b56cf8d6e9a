package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"github.com/vaultpam/appliance/rootfs/command"
	"github.com/vaultpam/appliance/update/trust"
)

// The update ISO's layout: the contract between the release (this
// package) and the appliance, which reads it from its CD-ROM
// (update/README.md, "The update ISO").
const (
	// ISOLabel is the ISO 9660 volume label.
	ISOLabel = "VPAM-UPDATE"
	// ISODir holds the bundle and its signature: exactly one NAME.update
	// and NAME.update.sig.
	ISODir = "vaultpam-update"
	// ISOMetadataDir holds the TUF metadata: every N.root.json from 1 up,
	// timestamp.json, snapshot.json and targets.json.
	ISOMetadataDir = ISODir + "/metadata"
)

// ISO says what goes on an update ISO.
type ISO struct {
	// Out is the ISO file to write (through a temporary file beside it).
	Out string
	// RepoDir is the release's TUF repository (dist/update-repo).
	RepoDir string
	// Bundle is the .update file; Signature its cosign signature (.sig).
	Bundle, Signature string
}

var rootFileRE = regexp.MustCompile(`^([1-9][0-9]*)\.root\.json$`)

// metadataFiles lists the repository's files an appliance needs, in the
// order a person reads them: 1.root.json … N.root.json, then timestamp,
// snapshot and targets. It fails when the root chain has a gap.
func metadataFiles(repoDir string) ([]string, error) {
	ents, err := os.ReadDir(repoDir)
	if err != nil {
		return nil, fmt.Errorf("reading the update repository: %w", err)
	}
	var versions []int
	for _, e := range ents {
		if m := rootFileRE.FindStringSubmatch(e.Name()); m != nil {
			n, _ := strconv.Atoi(m[1])
			versions = append(versions, n)
		}
	}
	sort.Ints(versions)
	if len(versions) == 0 {
		return nil, fmt.Errorf("update repository %s has no 1.root.json (hint: vaultpam-sign update-init creates it)", repoDir)
	}
	var files []string
	for i, v := range versions {
		if v != i+1 {
			return nil, fmt.Errorf("update repository %s: the root chain has a gap before %d.root.json", repoDir, v)
		}
		files = append(files, strconv.Itoa(v)+".root.json")
	}
	for _, n := range []string{"timestamp.json", "snapshot.json", "targets.json"} {
		if _, err := os.Stat(filepath.Join(repoDir, n)); err != nil {
			return nil, fmt.Errorf("update repository %s: %w (hint: a bundle must be published first)", repoDir, err)
		}
		files = append(files, n)
	}
	return files, nil
}

// WriteISO writes the update ISO (genisoimage -J -r, volume label
// ISOLabel). Before writing it checks what an appliance will check: the
// metadata verifies from 1.root.json on, is not expired, and lists the
// bundle with its length and sha256.
func WriteISO(ctx context.Context, c ISO) error {
	files, err := metadataFiles(c.RepoDir)
	if err != nil {
		return err
	}
	if err := checkOffer(c.RepoDir, c.Bundle); err != nil {
		return err
	}
	if _, err := os.Stat(c.Signature); err != nil {
		return fmt.Errorf("the bundle's signature: %w", err)
	}
	// Graft points put each file where it belongs without copying the
	// 120 MB bundle into a staging tree.
	args := []string{"-quiet", "-J", "-r", "-V", ISOLabel, "-graft-points"}
	tmp := filepath.Join(filepath.Dir(c.Out), "."+filepath.Base(c.Out)+".partial")
	args = append(args, "-o", tmp)
	for _, f := range files {
		args = append(args, ISOMetadataDir+"/"+f+"="+filepath.Join(c.RepoDir, f))
	}
	args = append(args,
		ISODir+"/"+filepath.Base(c.Bundle)+"="+c.Bundle,
		ISODir+"/"+filepath.Base(c.Bundle)+".sig="+c.Signature)
	os.Remove(tmp)
	if _, err := command.Run(ctx, nil, nil, "genisoimage", args...); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing the update ISO: %w (hint: genisoimage comes with the Debian package genisoimage: make deps)", err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.Out); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// checkOffer verifies the repository's metadata as an appliance with
// 1.root.json baked in would, and checks it lists the bundle file as it is.
func checkOffer(repoDir, bundlePath string) error {
	root1, err := os.ReadFile(filepath.Join(repoDir, "1.root.json"))
	if err != nil {
		return err
	}
	state, err := os.MkdirTemp("", "vaultpam-offer-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	name := filepath.Base(bundlePath)
	v := &trust.Verifier{BakedRoot: root1, StateDir: state}
	t, err := v.Target(repoDir, name)
	if err != nil {
		return fmt.Errorf("the update repository %s would be refused by an appliance: %w", repoDir, err)
	}
	sum, size, err := hashFile(bundlePath)
	if err != nil {
		return err
	}
	if t.Length != size || t.SHA256 != sum {
		return errors.New("the update repository lists " + name + " with another length or sha256 than the file has; publish the bundle again")
	}
	return nil
}
