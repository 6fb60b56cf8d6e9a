// Package oci builds the connector's container image without a container
// engine (go-containerregistry): from scratch, one layer with a CA bundle,
// /etc/passwd and /etc/group naming the non-root user, the static connector
// and the directories it uses; /data declared as a volume. The result is an
// OCI image layout in a tar (index.json, oci-layout, blobs/) that also
// carries Docker's manifest.json, so both `podman load` and `docker load`
// accept it.
//
// The build is reproducible: the same inputs give the same image digest.
// Every tar entry has the time Config.Created and fixed owners, entries are
// sorted, and the gzip stream has no name or time.
package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and identities inside the image (deploy/README.md, "Container").
const (
	BinaryPath = "/usr/bin/vaultpam-connector"
	CABundle   = "/etc/ssl/certs/ca-certificates.crt"
	DataDir    = "/data"
	ConfigDir  = "/config"
	ConfigFile = "/config/connector.yaml"
	SocketDir  = "/run/vaultpam"
	Socket     = "/run/vaultpam/connector.sock"
	UID        = 65532
	UserName   = "vaultpam"
)

// Config says what goes into the image.
type Config struct {
	// Binary is the static connector (CGO_ENABLED=0).
	Binary string
	// CABundle is the PEM bundle of public roots the connector trusts
	// when control_plane_ca_file is not set.
	CABundle string
	// Version labels the image and names it (Repository:Version).
	Version string
	// Repository is the image name recorded in the tarball
	// (docker.io/vaultpam/connector); Created the time of every file and
	// of the image (SOURCE_DATE_EPOCH).
	Repository string
	Created    time.Time
}

// DefaultConfig returns a config with the host's CA bundle and the
// image name; Binary, Version and Created must be set.
func DefaultConfig() Config {
	return Config{CABundle: "/etc/ssl/certs/ca-certificates.crt", Repository: "docker.io/vaultpam/connector"}
}

// Validate returns every problem with c.
func (c Config) Validate() error {
	var errs []error
	for name, p := range map[string]string{"binary": c.Binary, "CA bundle": c.CABundle} {
		if p == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		} else if st, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		} else if !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("%s %s is not a regular file", name, p))
		}
	}
	if c.Version == "" {
		errs = append(errs, errors.New("version is not set"))
	}
	if c.Repository == "" {
		errs = append(errs, errors.New("repository is not set"))
	}
	if c.Created.IsZero() {
		errs = append(errs, errors.New("created time is not set (SOURCE_DATE_EPOCH)"))
	}
	return errors.Join(errs...)
}

// FileName is the tarball's name in dist/.
func FileName(version string) string { return "vaultpam-connector-" + version + ".oci.tar" }

// Ref is the name the tarball gives the image (Repository:Version).
func (c Config) Ref() string { return c.Repository + ":" + c.Version }

// Image builds the image in memory.
func Image(c Config) (v1.Image, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("container image: %w", err)
	}
	layerTar, err := rootfs(c)
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // no name, zero time: reproducible
	zw.Write(layerTar)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	gzBytes := gz.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gzBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("making the layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: c.Created}, CreatedBy: "vaultpam-packages (deploy/oci)", Comment: "connector, CA bundle, user " + strconv.Itoa(UID),
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: c.Created}
	cf.Author = "VaultPAM"
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, UID),
		Entrypoint: []string{BinaryPath},
		Cmd:        []string{"run"},
		WorkingDir: "/",
		// PAM_AGENT_CONFIG stays unset: the connector's default is
		// /config/connector.yaml, and without that file and with
		// PAM_CONTROL_PLANE_URL set it takes its configuration from the
		// environment alone (which an explicit PAM_AGENT_CONFIG would
		// turn off).
		Env: []string{
			"PATH=/usr/bin",
			"SSL_CERT_FILE=" + CABundle,
			"PAM_AGENT_DATA_DIR=" + DataDir,
			"PAM_AGENT_SOCKET=" + Socket,
		},
		Volumes:    map[string]struct{}{DataDir: {}},
		StopSignal: "SIGTERM",
		Healthcheck: &v1.HealthConfig{
			Test:     []string{"CMD", BinaryPath, "status", "--check", "live"},
			Interval: 30 * time.Second, Timeout: 5 * time.Second, StartPeriod: 10 * time.Second, Retries: 3,
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "VaultPAM connector",
			"org.opencontainers.image.description": "Outbound-only connector that brokers VaultPAM sessions into this network",
			"org.opencontainers.image.version":     c.Version,
			"org.opencontainers.image.vendor":      "VaultPAM",
			"org.opencontainers.image.created":     c.Created.UTC().Format(time.RFC3339),
		},
	}
	return mutate.ConfigFile(img, cf)
}

// entry is one file or directory of the layer.
type entry struct {
	name     string // without leading slash
	mode     int64
	uid, gid int
	dir      bool
	data     []byte
}

// rootfs returns the layer's tar: sorted, fixed times and owners.
func rootfs(c Config) ([]byte, error) {
	bin, err := os.ReadFile(c.Binary)
	if err != nil {
		return nil, fmt.Errorf("reading the connector: %w", err)
	}
	ca, err := os.ReadFile(c.CABundle)
	if err != nil {
		return nil, fmt.Errorf("reading the CA bundle: %w", err)
	}
	u := strconv.Itoa(UID)
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" + UserName + ":x:" + u + ":" + u + ":VaultPAM connector:" + DataDir + ":/sbin/nologin\n"
	group := "root:x:0:\n" + UserName + ":x:" + u + ":\n"
	entries := []entry{
		{name: "etc", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/ssl", mode: 0o755, dir: true},
		{name: "etc/ssl/certs", mode: 0o755, dir: true},
		{name: CABundle[1:], mode: 0o644, data: ca},
		{name: "usr", mode: 0o755, dir: true},
		{name: "usr/bin", mode: 0o755, dir: true},
		{name: BinaryPath[1:], mode: 0o755, data: bin},
		{name: ConfigDir[1:], mode: 0o755, dir: true},
		{name: DataDir[1:], mode: 0o700, dir: true, uid: UID, gid: UID},
		{name: "run", mode: 0o755, dir: true},
		{name: SocketDir[1:], mode: 0o750, dir: true, uid: UID, gid: UID},
		{name: "tmp", mode: 0o1777, dir: true},
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: c.Created.UTC(),
			Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(e.data)),
		}
		if e.dir {
			h.Name += "/"
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Result is what WriteArchive wrote.
type Result struct {
	Path   string
	Digest v1.Hash // the image manifest's digest: what `podman images --digests` shows
	Size   int64   // of the tarball
}

// WriteArchive builds the image and writes it to path as an OCI layout
// tarball with Docker's manifest.json beside index.json. The file appears
// complete or not at all.
func WriteArchive(c Config, path string) (*Result, error) {
	img, err := Image(c)
	if err != nil {
		return nil, err
	}
	b, err := archive(img, c)
	if err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	return &Result{Path: path, Digest: d, Size: int64(len(b))}, nil
}

// archive lays img out as:
//
//	oci-layout, index.json           the OCI image layout (podman load, docker load ≥ 25)
//	manifest.json                    Docker's save format (older docker load), same blobs
//	blobs/sha256/<hex>               manifest, config, layer
func archive(img v1.Image, c Config) ([]byte, error) {
	manifest, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	mdigest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cdigest, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	blobs := map[string][]byte{
		blobPath(mdigest): manifest,
		blobPath(cdigest): config,
	}
	var layerPaths []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		blobs[blobPath(d)] = b
		layerPaths = append(layerPaths, blobPath(d))
	}
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1,
			Size:      int64(len(manifest)),
			Digest:    mdigest,
			Platform:  &v1.Platform{Architecture: "amd64", OS: "linux"},
			Annotations: map[string]string{
				"org.opencontainers.image.ref.name": c.Version,
				"io.containerd.image.name":          c.Ref(),
			},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	docker, err := json.Marshal([]struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{Config: blobPath(cdigest), RepoTags: []string{c.Ref()}, Layers: layerPaths}})
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"oci-layout":    []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json":    indexJSON,
		"manifest.json": docker,
	}
	for p, b := range blobs {
		files[p] = b
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []string{"blobs/", "blobs/sha256/"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: c.Created.UTC(), Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n])), ModTime: c.Created.UTC(), Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func blobPath(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }
