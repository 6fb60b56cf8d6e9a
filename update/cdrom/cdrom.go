// Package cdrom finds an update on the CD-ROM, for air-gapped
// appliances: an ISO 9660 medium labelled VPAM-UPDATE in a CD-ROM drive
// (/dev/sr*), laid out as the release writes it (update/release):
//
//	vaultpam-update/metadata/1.root.json … N.root.json, timestamp.json, snapshot.json, targets.json
//	vaultpam-update/vaultpam-connector-<version>.update
//	vaultpam-update/vaultpam-connector-<version>.update.sig   (for people; not read here)
//
// It reads the volume label straight from the device (no udev, no blkid),
// mounts a medium with that label read-only (nosuid, nodev, noexec) under
// /run/vaultpam-update/cdrom (the updater's own runtime directory, which
// no other user can change), and names the metadata directory and the bundle.
// Whether the update may be installed is the installer's decision.
package cdrom

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vaultpam/appliance/rootfs/command"
	"github.com/vaultpam/appliance/update/release"
)

// Label is the volume label of an update medium.
const Label = release.ISOLabel

// Defaults on the appliance.
const (
	DefaultDevices  = "/dev/sr*"
	DefaultMountDir = "/run/vaultpam-update/cdrom"
)

// ErrNone means no drive holds an update medium.
var ErrNone = errors.New("no update medium (label VPAM-UPDATE) in a CD-ROM drive")

// VolumeLabel reads the ISO 9660 volume identifier of the medium in dev
// (the primary volume descriptor at sector 16).
func VolumeLabel(dev string) (string, error) {
	label, _, err := volume(dev)
	return label, err
}

// volume reads the medium's label and a digest of its first 128 KiB of
// file system metadata from the primary volume descriptor on (creation
// time, size, path tables and, on an update ISO, the directories with the
// bundle's name), so a medium changed in the same drive is told from the
// one mounted.
func volume(dev string) (label, id string, err error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	head := make([]byte, 64*2048)
	n, err := f.ReadAt(head, 16*2048)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", "", err
	}
	if n < 2048 {
		return "", "", fmt.Errorf("%s holds no ISO 9660 file system", dev)
	}
	pvd := head[:2048]
	if pvd[0] != 1 || !bytes.Equal(pvd[1:6], []byte("CD001")) {
		return "", "", fmt.Errorf("%s holds no ISO 9660 file system", dev)
	}
	sum := sha256.Sum256(head[:n])
	return strings.TrimRight(string(pvd[40:72]), " \x00"), hex.EncodeToString(sum[:]), nil
}

// Media is a mounted update medium.
type Media struct {
	Device      string
	Dir         string // where it is mounted
	MetadataDir string
	Target      string // the bundle's name (the TUF target)
	Bundle      string // its path
}

// Finder looks for update media.
type Finder struct {
	Devices  string // glob of CD-ROM devices
	MountDir string
	// Mount mounts dev read-only at dir; nil means mount(8) with
	// -t iso9660 -o ro,nosuid,nodev,noexec.
	Mount func(dev, dir string) error
	// Unmount undoes Mount; nil means umount(8).
	Unmount func(dir string) error
	mounted string // device mounted at MountDir by us
	volume  string // the mounted medium's volume descriptor digest
}

// Find returns the update medium in a drive, mounted; ErrNone when there
// is none. A medium already mounted by an earlier Find is reused; one
// that is gone is unmounted; one changed in the same drive (another ISO:
// another volume descriptor) is unmounted and the new one mounted.
func (f *Finder) Find() (*Media, error) {
	devs, _ := filepath.Glob(f.Devices)
	for _, dev := range devs {
		label, vol, err := volume(dev)
		if err != nil || label != Label {
			continue
		}
		if f.mounted != dev || f.volume != vol {
			if err := f.Release(); err != nil {
				return nil, err
			}
			if err := os.MkdirAll(f.MountDir, 0o700); err != nil {
				return nil, err
			}
			if err := f.mount(dev, f.MountDir); err != nil {
				return nil, fmt.Errorf("mounting the update medium in %s: %w", dev, err)
			}
			f.mounted, f.volume = dev, vol
		}
		return f.read(dev)
	}
	if err := f.Release(); err != nil {
		return nil, err
	}
	return nil, ErrNone
}

func (f *Finder) read(dev string) (*Media, error) {
	m := &Media{Device: dev, Dir: f.MountDir, MetadataDir: filepath.Join(f.MountDir, release.ISOMetadataDir)}
	bundles, _ := filepath.Glob(filepath.Join(f.MountDir, release.ISODir, "*.update"))
	switch len(bundles) {
	case 0:
		return nil, fmt.Errorf("the update medium in %s holds no %s/*.update (hint: attach the update ISO of a release, vaultpam-connector-<version>-update.iso)", dev, release.ISODir)
	case 1:
	default:
		return nil, fmt.Errorf("the update medium in %s holds %d bundles; an update ISO holds one", dev, len(bundles))
	}
	m.Bundle = bundles[0]
	m.Target = filepath.Base(m.Bundle)
	return m, nil
}

// Release unmounts the medium Find mounted, if any.
func (f *Finder) Release() error {
	if f.mounted == "" {
		return nil
	}
	var err error
	if f.Unmount != nil {
		err = f.Unmount(f.MountDir)
	} else {
		_, err = command.Run(context.Background(), nil, nil, "umount", f.MountDir)
	}
	if err != nil {
		return fmt.Errorf("unmounting the update medium: %w", err)
	}
	f.mounted, f.volume = "", ""
	return nil
}

func (f *Finder) mount(dev, dir string) error {
	if f.Mount != nil {
		return f.Mount(dev, dir)
	}
	_, err := command.Run(context.Background(), nil, nil, "mount", "-t", "iso9660", "-o", "ro,nosuid,nodev,noexec", dev, dir)
	return err
}
