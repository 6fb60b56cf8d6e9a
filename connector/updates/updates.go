// Package updates is the connector's part in appliance image updates. The
// control plane offers an update on the tunnel (protocol.UpdateOffer); the
// Manager downloads the signed update metadata and the bundle from the
// control plane over HTTPS — with the connector's client certificate,
// through the configured proxy — into the data directory, and hands them
// to the appliance's updater (vaultpam-update, over its local socket),
// which verifies everything before it writes a byte. The Manager reports
// the update's progress for the heartbeats and the status JSON.
//
// The connector does no verification of its own and never writes outside
// its data directory: the updater, which runs with the privileges to write
// a root slot, trusts nothing it did not verify itself. Where no updater
// runs (containers, native packages) an offer is answered as failed, with
// the reason.
package updates

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
)

// Updater is what the Manager needs from the appliance's updater
// (*localapi.UpdaterClient implements it).
type Updater interface {
	Status(ctx context.Context) (localapi.Image, error)
	Install(ctx context.Context, r localapi.InstallRequest) error
	Rollback(ctx context.Context, r localapi.RollbackRequest) error
}

// Options configure a Manager. Dir and HTTPClient are required.
type Options struct {
	// Dir receives the downloads, one directory per offer
	// (PAM_AGENT_DATA_DIR/update/incoming).
	Dir string
	// HTTPClient returns a client for the control plane: TLS with the
	// current client certificate and the control plane's roots, the proxy.
	// Called per offer, so a renewed certificate is used.
	HTTPClient func() (*http.Client, error)
	// BaseURL is the control plane's URL (https://host:port).
	BaseURL string
	// Updater is the appliance's updater, at UpdaterSocket; nil, or no
	// socket there, means this is not an appliance: offers are reported
	// failed.
	Updater       Updater
	UpdaterSocket string
	// PollInterval is how often the updater's status is read; 0 means 5 s.
	PollInterval time.Duration
	Logger       *slog.Logger // nil discards
	Now          func() time.Time
}

// Manager runs offered updates. Create it with New, run Run; Offer and the
// readers are safe for concurrent use.
type Manager struct {
	opt Options
	log *slog.Logger

	mu      sync.Mutex
	image   *localapi.Image // last status read from the updater
	local   *protocol.UpdateReport
	localAt time.Time       // when local was set
	active  string          // offer ID being downloaded or handed over
	seen    map[string]bool // offer IDs taken on (an offer repeats after every hello)
}

// New returns a Manager.
func New(opt Options) (*Manager, error) {
	var errs []error
	if opt.Dir == "" {
		errs = append(errs, errors.New("updates: no download directory"))
	}
	if opt.HTTPClient == nil {
		errs = append(errs, errors.New("updates: no HTTP client for the control plane"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opt.PollInterval <= 0 {
		opt.PollInterval = 5 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Manager{opt: opt, log: opt.Logger, seen: map[string]bool{}}, nil
}

// Run reads the updater's status every PollInterval until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	if m.opt.Updater == nil {
		return
	}
	t := time.NewTicker(m.opt.PollInterval)
	defer t.Stop()
	for {
		m.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Manager) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	im, err := m.opt.Updater.Status(ctx)
	if err != nil {
		m.log.Debug("reading the updater's status", "err", err)
		return
	}
	m.mu.Lock()
	m.image = &im
	m.mu.Unlock()
}

// Image returns the last image status read from the updater, nil before
// the first one or where there is no updater.
func (m *Manager) Image() *localapi.Image {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.image == nil {
		return nil
	}
	im := *m.image
	return &im
}

// Report returns the running image version and the update state the
// heartbeats carry: the connector's own progress while it downloads and
// hands over (or when that failed), the updater's once the updater has
// taken the update, whichever is newer.
func (m *Manager) Report() (string, *protocol.UpdateReport) {
	m.mu.Lock()
	defer m.mu.Unlock()
	version := ""
	var r *protocol.UpdateReport
	var at time.Time
	if m.image != nil {
		version = m.image.Version
		if u := m.image.Update; u != nil {
			r, at = &protocol.UpdateReport{Version: u.Version, State: u.State, Reason: u.Reason}, u.At
		}
	}
	if m.local != nil && (m.active != "" || r == nil || m.localAt.After(at)) {
		l := *m.local
		r = &l
	}
	return version, r
}

var (
	offerIDRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`) // a directory name: never . or ..
	fileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// maxMetadata bounds one metadata file.
const maxMetadata = 4 << 20

// Offer takes an offer: it starts downloading and handing over in the
// background, once per offer ID (the control plane repeats a standing
// offer after every reconnect). An offer handed to the updater is not
// taken again after a restart either (a mark beside the downloads): the
// updater's status reports its outcome. A bad offer is reported failed.
func (m *Manager) Offer(o protocol.UpdateOffer) {
	m.mu.Lock()
	if m.seen[o.ID] {
		m.mu.Unlock()
		return
	}
	m.seen[o.ID] = true
	if m.handedBefore(o.ID) {
		// This connector handed the offer to the updater before it
		// restarted (a reboot into the new slot, a power cut while the
		// slot was written): the updater owns its outcome and its status
		// speaks. Taking it again would install again what reconcile just
		// reported, before the control plane hears of it.
		m.mu.Unlock()
		m.log.Info("update offer was handed to the updater before; not taken again", "version", o.Version, "offer", o.ID)
		return
	}
	busy := m.active != ""
	if !busy {
		m.active = o.ID
	}
	m.local = &protocol.UpdateReport{OfferID: o.ID, Version: o.Version, State: localapi.UpdateOffered}
	m.localAt = m.opt.Now()
	m.mu.Unlock()
	if busy {
		m.fail(o, "another update is being downloaded; the control plane may offer this one again later")
		return
	}
	go m.run(o)
}

func (m *Manager) set(o protocol.UpdateOffer, state, reason string) {
	m.mu.Lock()
	m.local = &protocol.UpdateReport{OfferID: o.ID, Version: o.Version, State: state, Reason: reason}
	m.localAt = m.opt.Now()
	m.mu.Unlock()
}

func (m *Manager) fail(o protocol.UpdateOffer, reason string) {
	m.log.Warn("update not installed", "version", o.Version, "offer", o.ID, "reason", reason)
	m.set(o, localapi.UpdateFailed, reason)
}

func (m *Manager) run(o protocol.UpdateOffer) {
	defer func() {
		m.mu.Lock()
		if m.active == o.ID {
			m.active = ""
		}
		m.mu.Unlock()
	}()
	if err := checkOffer(o); err != nil {
		m.fail(o, "the control plane's offer is malformed: "+err.Error())
		return
	}
	if !m.appliance() {
		m.fail(o, "this connector does not run on the VaultPAM appliance: update it the way it was installed (container image, package)")
		return
	}
	m.log.Info("update offered; downloading", "version", o.Version, "offer", o.ID, "bytes", o.Bundle.Length)
	m.set(o, localapi.UpdateDownloading, fmt.Sprintf("downloading %s (%d MiB)", o.Target, o.Bundle.Length>>20))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	dir := filepath.Join(m.opt.Dir, o.ID)
	if err := m.download(ctx, o, dir); err != nil {
		os.RemoveAll(dir)
		m.fail(o, err.Error())
		return
	}
	m.set(o, localapi.UpdateDownloading, "downloaded; the updater verifies and writes it")
	err := m.opt.Updater.Install(ctx, localapi.InstallRequest{Source: "control_plane", Dir: dir, Target: o.Target})
	if err != nil {
		var le *localapi.Error
		reason := "handing the update to the updater: " + err.Error()
		if errors.As(err, &le) {
			reason = le.Message
			if le.Hint != "" {
				reason += " (" + le.Hint + ")"
			}
		}
		os.RemoveAll(dir)
		m.fail(o, reason)
		return
	}
	m.log.Info("update handed to the updater", "version", o.Version, "offer", o.ID)
	if err := os.WriteFile(m.handedPath(o.ID), nil, 0o640); err != nil {
		m.log.Warn("recording the hand-over (a restart would take the offer again)", "offer", o.ID, "err", err)
	}
	m.poll(ctx)
	m.mu.Lock()
	m.local = nil // from here on the updater's status speaks
	m.mu.Unlock()
	m.cleanup(o.ID)
}

// handedPath is the mark of offer id handed to the updater, beside its
// download directory; it outlives restarts (the data directory).
func (m *Manager) handedPath(id string) string { return filepath.Join(m.opt.Dir, id+".handed") }

// handedBefore reports whether offer id was handed to the updater, by
// this process or before a restart.
func (m *Manager) handedBefore(id string) bool {
	if !offerIDRE.MatchString(id) {
		return false // run refuses it
	}
	_, err := os.Stat(m.handedPath(id))
	return err == nil
}

// cleanup removes download directories (and hand-over marks) of other
// offers.
func (m *Manager) cleanup(keep string) {
	entries, _ := os.ReadDir(m.opt.Dir)
	for _, e := range entries {
		if e.Name() != keep && e.Name() != keep+".handed" {
			os.RemoveAll(filepath.Join(m.opt.Dir, e.Name()))
		}
	}
}

func checkOffer(o protocol.UpdateOffer) error {
	var errs []error
	if !offerIDRE.MatchString(o.ID) {
		errs = append(errs, fmt.Errorf("offer ID %q", o.ID))
	}
	files := append([]protocol.UpdateFile{o.Bundle}, o.Metadata...)
	for _, f := range files {
		if !fileNameRE.MatchString(f.Name) || !strings.HasPrefix(f.Path, "/") || strings.Contains(f.Path, "..") || f.Length <= 0 {
			errs = append(errs, fmt.Errorf("file %q (%q, %d bytes)", f.Name, f.Path, f.Length))
		}
	}
	if o.Target != o.Bundle.Name {
		errs = append(errs, fmt.Errorf("target %q is not the bundle %q", o.Target, o.Bundle.Name))
	}
	if len(o.Metadata) == 0 {
		errs = append(errs, errors.New("no signed metadata"))
	}
	return errors.Join(errs...)
}

// download fetches every file of the offer into dir, each to its exact
// length, metadata first.
func (m *Manager) download(ctx context.Context, o protocol.UpdateOffer, dir string) error {
	hc, err := m.opt.HTTPClient()
	if err != nil {
		return fmt.Errorf("no connection to the control plane for the download: %w", err)
	}
	defer hc.CloseIdleConnections()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("download directory: %w", err)
	}
	for _, f := range o.Metadata {
		if f.Length > maxMetadata {
			return fmt.Errorf("metadata file %s is %d bytes, more than %d", f.Name, f.Length, maxMetadata)
		}
	}
	for _, f := range append(append([]protocol.UpdateFile(nil), o.Metadata...), o.Bundle) {
		if err := m.fetch(ctx, hc, f, filepath.Join(dir, f.Name)); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) fetch(ctx context.Context, hc *http.Client, f protocol.UpdateFile, dst string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(m.opt.BaseURL, "/")+f.Path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("downloading %s from the control plane: %w", f.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("downloading %s: the control plane answered %s", f.Name, resp.Status)
	}
	out, err := os.OpenFile(dst+".part", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("download directory: %w", err)
	}
	n, err := io.Copy(out, io.LimitReader(resp.Body, f.Length+1))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst + ".part")
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("the data partition is full: %s (%d MiB) does not fit", f.Name, f.Length>>20)
		}
		return fmt.Errorf("downloading %s: %w", f.Name, err)
	}
	if n != f.Length {
		os.Remove(dst + ".part")
		return fmt.Errorf("downloading %s: got %d bytes, the offer says %d", f.Name, n, f.Length)
	}
	return os.Rename(dst+".part", dst)
}

// appliance reports whether an updater is there to take updates.
func (m *Manager) appliance() bool {
	if m.opt.Updater == nil {
		return false
	}
	if m.opt.UpdaterSocket == "" {
		return true
	}
	_, err := os.Stat(m.opt.UpdaterSocket)
	return err == nil
}

// Install forwards an install request of the console (an update on the
// CD-ROM, a confirmed downgrade) to the updater.
func (m *Manager) Install(ctx context.Context, r localapi.InstallRequest) error {
	if !m.appliance() {
		return &localapi.Error{Status: 501, Code: localapi.UpdateCodeNothingHere, Message: "no image updater runs here: this connector is not on the VaultPAM appliance"}
	}
	err := m.opt.Updater.Install(ctx, r)
	m.poll(ctx)
	return err
}

// Rollback forwards a rollback request of the console to the updater.
func (m *Manager) Rollback(ctx context.Context, r localapi.RollbackRequest) error {
	if !m.appliance() {
		return &localapi.Error{Status: 501, Code: localapi.UpdateCodeNothingHere, Message: "no image updater runs here: this connector is not on the VaultPAM appliance"}
	}
	err := m.opt.Updater.Rollback(ctx, r)
	m.poll(ctx)
	return err
}
