package lab

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/atomicfile"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
)

// Offer is an image update the lab offers one connector: the bundle file
// (served from where it is) and a copy of the signed update metadata made
// when the offer was made (served from the state directory). It stands
// until the connector reports the update succeeded, failed or rolled back.
type Offer struct {
	ID          string    `json:"id"`
	ConnectorID string    `json:"connector_id"`
	Version     string    `json:"version"`
	Target      string    `json:"target"`      // the bundle's name in the signed metadata
	BundlePath  string    `json:"bundle_path"` // absolute path of the .update file
	BundleSize  int64     `json:"bundle_size"`
	Metadata    []string  `json:"metadata"` // file names under DIR/updates/<id>/
	CreatedAt   time.Time `json:"created_at"`
}

// UpdateInfo is a connector's latest update as it reported it.
type UpdateInfo struct {
	OfferID string    `json:"offer_id,omitempty"`
	Version string    `json:"version"`
	State   string    `json:"state"` // offered, downloading, installed, rebooting, succeeded, failed, rolled_back
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

var rootFileRE = regexp.MustCompile(`^[1-9][0-9]*\.root\.json$`)

// OfferUpdate offers the update bundle at bundlePath to connector id. repo
// is the signed update repository the bundle is listed in (a directory with
// N.root.json, timestamp.json, snapshot.json, targets.json); "" means
// update-repo next to the bundle, as `make ova` writes them into dist/.
// The lab does not verify the signatures (the appliance does); it reads
// the bundle's version from the targets entry, and refuses a bundle the
// metadata does not list or whose size differs.
func (a *Authority) OfferUpdate(id, bundlePath, repo string) (Offer, error) {
	abs, err := filepath.Abs(bundlePath)
	if err != nil {
		return Offer{}, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return Offer{}, fmt.Errorf("update bundle: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Offer{}, fmt.Errorf("update bundle %s is not a regular file", abs)
	}
	if repo == "" {
		repo = filepath.Join(filepath.Dir(abs), "update-repo")
	}
	target := filepath.Base(abs)
	version, length, err := targetEntry(filepath.Join(repo, "targets.json"), target)
	if err != nil {
		return Offer{}, fmt.Errorf("update repository %s: %w (hint: give the repository of the release with --repo; make ova writes dist/update-repo)", repo, err)
	}
	if length != st.Size() {
		return Offer{}, fmt.Errorf("update bundle %s is %d bytes, the signed metadata says %d: not the bundle it lists", abs, st.Size(), length)
	}
	names, err := metadataFiles(repo)
	if err != nil {
		return Offer{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.connector(id) == nil {
		return Offer{}, fmt.Errorf("no connector with ID %q (see `vaultpam-lab connectors`)", id)
	}
	var rb [8]byte
	if _, err := io.ReadFull(a.cfg.Rand, rb[:]); err != nil {
		return Offer{}, err
	}
	o := Offer{ID: "upd-" + hex.EncodeToString(rb[:]), ConnectorID: id, Version: version, Target: target,
		BundlePath: abs, BundleSize: st.Size(), Metadata: names, CreatedAt: a.cfg.Now().UTC()}
	dir := filepath.Join(a.cfg.StateDir, "updates", o.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Offer{}, err
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(repo, n))
		if err != nil {
			return Offer{}, err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			return Offer{}, err
		}
	}
	// One standing offer per connector: a new one replaces the old.
	a.st.Offers = slices.DeleteFunc(a.st.Offers, func(x *Offer) bool { return x.ConnectorID == id })
	a.st.Offers = append(a.st.Offers, &o)
	c := a.st.connector(id)
	c.Update = &UpdateInfo{OfferID: o.ID, Version: version, State: localapi.UpdateOffered, At: o.CreatedAt}
	if err := a.st.save(a.cfg.StateDir); err != nil {
		return Offer{}, err
	}
	return o, nil
}

// targetEntry reads a bundle's version and length from targets.json.
func targetEntry(path, name string) (string, int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	var doc struct {
		Signed struct {
			Targets map[string]struct {
				Length int64 `json:"length"`
				Custom struct {
					Version string `json:"version"`
				} `json:"custom"`
			} `json:"targets"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, err)
	}
	t, ok := doc.Signed.Targets[name]
	if !ok {
		return "", 0, fmt.Errorf("its targets do not list %s", name)
	}
	if t.Custom.Version == "" {
		return "", 0, fmt.Errorf("its entry for %s has no version", name)
	}
	return t.Custom.Version, t.Length, nil
}

// metadataFiles lists the repository's metadata files, roots in version
// order first.
func metadataFiles(repo string) ([]string, error) {
	entries, err := os.ReadDir(repo)
	if err != nil {
		return nil, err
	}
	var roots []string
	for _, e := range entries {
		if rootFileRE.MatchString(e.Name()) {
			roots = append(roots, e.Name())
		}
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("update repository %s has no 1.root.json", repo)
	}
	sort.Slice(roots, func(i, j int) bool { return rootNum(roots[i]) < rootNum(roots[j]) })
	out := append(roots, "timestamp.json", "snapshot.json", "targets.json")
	for _, n := range out[len(roots):] {
		if _, err := os.Stat(filepath.Join(repo, n)); err != nil {
			return nil, fmt.Errorf("update repository %s: %w", repo, err)
		}
	}
	return out, nil
}

func rootNum(name string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(name, ".root.json"))
	return n
}

// StandingOffer returns connector id's standing offer as the tunnel sends
// it, or nil.
func (a *Authority) StandingOffer(id string) *protocol.UpdateOffer {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, o := range a.st.Offers {
		if o.ConnectorID == id {
			return a.wireOffer(o)
		}
	}
	return nil
}

func (a *Authority) wireOffer(o *Offer) *protocol.UpdateOffer {
	w := &protocol.UpdateOffer{ID: o.ID, Version: o.Version, Target: o.Target,
		Bundle: protocol.UpdateFile{Name: o.Target, Path: offerPath(o.ID, o.Target), Length: o.BundleSize}}
	for _, n := range o.Metadata {
		length := int64(0)
		if st, err := os.Stat(filepath.Join(a.cfg.StateDir, "updates", o.ID, n)); err == nil {
			length = st.Size()
		}
		w.Metadata = append(w.Metadata, protocol.UpdateFile{Name: n, Path: offerPath(o.ID, n), Length: length})
	}
	return w
}

func offerPath(id, name string) string { return "/v1/update/" + id + "/" + name }

// UpdateReported records what connector id reported about its update and
// its running version. An update that ended (succeeded, failed, rolled
// back) takes its offer down: the lab never offers a version again by
// itself.
func (a *Authority) UpdateReported(id, runningVersion string, r *protocol.UpdateReport) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.st.connector(id)
	if c == nil {
		return
	}
	changed := false
	if runningVersion != "" && c.Version != runningVersion {
		c.Version, changed = runningVersion, true
	}
	if r != nil && r.State != "" {
		u := &UpdateInfo{OfferID: r.OfferID, Version: r.Version, State: r.State, Reason: r.Reason, At: a.cfg.Now().UTC()}
		if c.Update == nil || c.Update.State != u.State || c.Update.Reason != u.Reason || c.Update.Version != u.Version {
			c.Update, changed = u, true
		}
		switch r.State {
		case localapi.UpdateSucceeded, localapi.UpdateFailed, localapi.UpdateRolledBack:
			n := len(a.st.Offers)
			a.st.Offers = slices.DeleteFunc(a.st.Offers, func(o *Offer) bool {
				return o.ConnectorID == id && (r.OfferID == "" || o.ID == r.OfferID || o.Version == r.Version)
			})
			changed = changed || n != len(a.st.Offers)
		}
	}
	if changed {
		a.st.save(a.cfg.StateDir) // best effort, like heartbeats
	}
}

// serveUpdateFile serves a file of connector's standing offer: the bundle
// or one of the metadata files. Only the connector the offer is for may
// fetch it (its client certificate).
func (a *Authority) serveUpdateFile(w http.ResponseWriter, r *http.Request) {
	id, err := a.clientID(r)
	if err != nil {
		reply(w, nil, err)
		return
	}
	offerID, name := r.PathValue("offer"), r.PathValue("name")
	a.mu.Lock()
	var o *Offer
	for _, x := range a.st.Offers {
		if x.ID == offerID && x.ConnectorID == id {
			o = x
		}
	}
	var path string
	switch {
	case o == nil:
	case name == o.Target:
		path = o.BundlePath
	case slices.Contains(o.Metadata, name):
		path = filepath.Join(a.cfg.StateDir, "updates", o.ID, name)
	}
	a.mu.Unlock()
	if path == "" {
		http.Error(w, "no such update file for this connector", http.StatusNotFound)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "update file not readable: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// clientID authenticates the request's client certificate.
func (a *Authority) clientID(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", apiErr(http.StatusUnauthorized, protocol.CodeNoClientCert, "update files are served to the connector they are offered to: a client certificate is required")
	}
	id, err := a.Authenticate(r.TLS.PeerCertificates[0])
	if err != nil {
		return "", err
	}
	return id, nil
}
