package lab

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/vaultpam/appliance/connector/atomicfile"
	"github.com/vaultpam/appliance/connector/support"
	"github.com/vaultpam/appliance/lab/broker"
)

// The lab's support-bundle key and the bundles connectors upload, in the
// state directory:
//
//	support.key          the age X25519 identity (0600); its recipient is
//	                     announced in every hello_ack
//	bundles/<id>.age     a bundle as received (encrypted)
//	bundles/<id>.json    who sent it, when, its size
const (
	SupportKeyFile = "support.key"
	BundlesDir     = "bundles"
)

// BundleInfo describes a received support bundle.
type BundleInfo struct {
	ID            string    `json:"id"`
	ConnectorID   string    `json:"connector_id"`
	ConnectorName string    `json:"connector_name,omitempty"`
	Name          string    `json:"name"` // as the connector named it
	Size          int64     `json:"size"`
	ReceivedAt    time.Time `json:"received_at"`
}

// loadOrCreateSupportKey reads DIR/support.key, making it on first use.
func loadOrCreateSupportKey(dir string) (*age.X25519Identity, error) {
	p := filepath.Join(dir, SupportKeyFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(p, []byte(id.String()+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("writing the support-bundle key: %w", err)
		}
		return id, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the support-bundle key: %w", err)
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s is not an age identity: %w", p, err)
	}
	return id, nil
}

// SupportRecipient is the age recipient connectors encrypt support
// bundles to (announced in hello_ack).
func (a *Authority) SupportRecipient() string { return a.support.Recipient().String() }

var bundleIDRE = regexp.MustCompile(`^sb-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// StoreBundle keeps a support bundle a connector uploads (the broker's
// OnSupportBundle): the ciphertext in DIR/bundles/<id>.age, then its
// description. A short or failed upload leaves nothing behind.
func (a *Authority) StoreBundle(_ context.Context, b broker.SupportBundle, r io.Reader) (string, error) {
	dir := filepath.Join(a.cfg.StateDir, BundlesDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var rnd [4]byte
	if _, err := io.ReadFull(a.cfg.Rand, rnd[:]); err != nil {
		return "", err
	}
	now := a.cfg.Now().UTC()
	id := "sb-" + now.Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:])
	f, err := os.CreateTemp(dir, ".incoming-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if n != b.Size {
		return "", fmt.Errorf("received %d bytes, announced %d", n, b.Size)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, id+".age")); err != nil {
		return "", err
	}
	info := BundleInfo{ID: id, ConnectorID: b.ConnectorID, Name: b.Name, Size: n, ReceivedAt: now}
	if c, ok := a.Connector(b.ConnectorID); ok {
		info.ConnectorName = c.Name
	}
	js, _ := json.MarshalIndent(info, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(dir, id+".json"), append(js, '\n'), 0o600); err != nil {
		os.Remove(filepath.Join(dir, id+".age"))
		return "", err
	}
	return id, nil
}

// ListBundles lists the support bundles in stateDir, oldest first. It
// reads files only: it works with or without a running serve.
func ListBundles(stateDir string) ([]BundleInfo, error) {
	ms, err := filepath.Glob(filepath.Join(stateDir, BundlesDir, "sb-*.json"))
	if err != nil {
		return nil, err
	}
	var out []BundleInfo
	for _, m := range ms {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		var info BundleInfo
		if err := json.Unmarshal(b, &info); err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].ReceivedAt.Before(out[j].ReceivedAt) || out[i].ReceivedAt.Equal(out[j].ReceivedAt) && out[i].ID < out[j].ID
	})
	return out, nil
}

// OpenBundle decrypts support bundle id with the lab's key.
func OpenBundle(stateDir, id string) (*support.Bundle, error) {
	if !bundleIDRE.MatchString(id) {
		return nil, fmt.Errorf("%q is not a support bundle ID (sb-YYYYMMDDTHHMMSSZ-xxxxxxxx; see `vaultpam-lab bundles`)", id)
	}
	key, err := os.ReadFile(filepath.Join(stateDir, SupportKeyFile))
	if err != nil {
		return nil, fmt.Errorf("reading the lab's support-bundle key: %w", err)
	}
	ident, err := age.ParseX25519Identity(strings.TrimSpace(string(key)))
	if err != nil {
		return nil, fmt.Errorf("the lab's support-bundle key: %w", err)
	}
	f, err := os.Open(filepath.Join(stateDir, BundlesDir, id+".age"))
	if err != nil {
		return nil, fmt.Errorf("support bundle %s: %w", id, err)
	}
	defer f.Close()
	return support.Open(f, ident)
}
