package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// The appliance's image updater (vaultpam-update, module update/) serves
// its own local API on UpdaterSocket, with these types. The connector
// repeats the updater's Image in its Status, forwards plain install
// requests to it (POST /v1/update/install: an update on the CD-ROM) and
// carries Image.Update to the control plane in its heartbeats. What only
// the operator may ask — a confirmed downgrade, a rollback — the console
// sends to UpdaterSocket itself (UpdaterClient): the updater checks the
// caller's uid (SO_PEERCRED: root or vaultpam-console), and the connector
// refuses to relay those (403 UpdateCodeNotPermitted). The types live here,
// in the runtime module, so the connector and the console can use them
// without the updater's dependencies.
//
//	GET  /v1/status     → Image
//	POST /v1/install    ← InstallRequest  → 202, or an ErrorBody (409 refused, 400 bad request)
//	POST /v1/rollback   ← RollbackRequest → 202, or an ErrorBody
//
// The socket is in the updater's own runtime directory (root's, mode 0750,
// group vaultpam), so no other user can replace it; the socket is 0660,
// group vaultpam (the connector and the console).
const UpdaterSocket = "/run/vaultpam-update/update.sock"

// Update states, as the control plane and the status JSON show them.
const (
	UpdateOffered     = "offered"     // the control plane offered it (or it was found on the CD-ROM)
	UpdateDownloading = "downloading" // being fetched, verified and written to the other slot
	UpdateInstalled   = "installed"   // written and verified; waiting for the reboot (or the maintenance window)
	UpdateRebooting   = "rebooting"   // draining sessions and rebooting into the new slot
	UpdateSucceeded   = "succeeded"   // the new slot is running, Online with the same connector ID, and kept
	UpdateFailed      = "failed"      // refused or stopped before the new slot was booted; the running slot is unchanged
	UpdateRolledBack  = "rolled_back" // the new slot was booted but did not come Online; the previous slot runs again
)

// Refusal codes of the updater (ErrorBody.Code).
const (
	UpdateCodeNotNewer    = "update_not_newer"   // not newer than the running version (ConfirmDowngrade to allow)
	UpdateCodeFailedOnce  = "update_failed_once" // this version failed on this appliance before
	UpdateCodeUntrusted   = "update_untrusted"   // not signed by a trusted key
	UpdateCodeExpired     = "update_expired"     // the signed metadata expired (or the clock is wrong)
	UpdateCodeReplayed    = "update_replayed"    // older metadata than this appliance has seen
	UpdateCodeDamaged     = "update_damaged"     // the bundle's bytes are not what the metadata says
	UpdateCodeBusy        = "update_busy"        // another install or a trial boot is in progress
	UpdateCodeNoSpace     = "update_no_space"    // the bundle does not fit the slot
	UpdateCodeNoDurable   = "update_no_durable"  // /data is not durable: no rollback protection, no automatic update
	UpdateCodeNothingHere = "update_nothing"     // nothing to install (no CD-ROM update, no other slot to roll back to)
	// UpdateCodeNotPermitted (403): a downgrade's confirmation or a
	// rollback from a caller that is not the operator (root or the
	// console's user, by the socket's peer credentials), or relayed by
	// the connector, which never carries them.
	UpdateCodeNotPermitted = "update_not_permitted"
)

// Image is the image and update status of the appliance.
type Image struct {
	Version string `json:"version"` // running image version
	Slot    string `json:"slot"`    // running root slot, "A" or "B"
	// Other is the slot that is not running, when it holds an image.
	Other *SlotInfo `json:"other,omitempty"`
	// Pending is true while an install or a trial boot of the other slot
	// is in progress.
	Pending bool `json:"pending"`
	// Update is the update in progress, or the last one.
	Update *UpdateStatus `json:"update,omitempty"`
	// Available is an update found on the CD-ROM, ready to install.
	Available *Available `json:"available,omitempty"`
	// TrustedRootVersion is the version of the update signing root this
	// appliance trusts (it grows when the release keys are rotated).
	TrustedRootVersion int64 `json:"trusted_root_version,omitempty"`
}

// SlotInfo describes a root slot.
type SlotInfo struct {
	Slot    string `json:"slot"`
	Version string `json:"version,omitempty"`
	// State: "good" (booted and kept), "trial" (being tried), "failed"
	// (did not come Online), "empty".
	State string `json:"state"`
}

// UpdateStatus is one update's progress.
type UpdateStatus struct {
	Version string `json:"version"`
	State   string `json:"state"` // one of the Update* states
	// Reason says why, for people: the refusal, the failure, the rollback.
	Reason string `json:"reason,omitempty"`
	// Source is "control_plane" or "cdrom".
	Source string    `json:"source,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// Available is an update the appliance can install now.
type Available struct {
	Version string `json:"version"`
	Source  string `json:"source"` // "cdrom"
}

// InstallRequest asks the updater to install an update: from Dir (a
// directory holding the signed metadata files and the bundle Target, as
// the connector downloaded them) or from the CD-ROM (Source "cdrom").
type InstallRequest struct {
	Source string `json:"source"` // "control_plane" or "cdrom"
	Dir    string `json:"dir,omitempty"`
	Target string `json:"target,omitempty"` // the bundle's name in the signed metadata
	// ConfirmDowngrade allows a version older than the running one; only
	// the console sets it, after the operator confirmed, on its own
	// connection to UpdaterSocket (the updater refuses it from any other
	// uid than root's and the console's; the connector never relays it).
	ConfirmDowngrade bool `json:"confirm_downgrade,omitempty"`
}

// RollbackRequest asks to boot the other slot's image; Confirm must be set.
type RollbackRequest struct {
	Confirm bool `json:"confirm"`
}

// UpdaterClient talks to the updater's socket. The zero value is not
// usable; use NewUpdaterClient. Safe for concurrent use.
type UpdaterClient struct{ c *Client }

// NewUpdaterClient returns a client for the updater's socket at path (""
// means UpdaterSocket).
func NewUpdaterClient(path string) *UpdaterClient {
	if path == "" {
		path = UpdaterSocket
	}
	return &UpdaterClient{c: NewClient(path)}
}

// Status fetches the image status.
func (u *UpdaterClient) Status(ctx context.Context) (Image, error) {
	var im Image
	err := u.c.do(ctx, http.MethodGet, "/v1/status", nil, &im)
	return im, err
}

// Install asks for an install; refusals come back as *Error.
func (u *UpdaterClient) Install(ctx context.Context, r InstallRequest) error {
	return u.c.do(ctx, http.MethodPost, "/v1/install", r, nil)
}

// Rollback asks to boot the other slot; refusals come back as *Error.
func (u *UpdaterClient) Rollback(ctx context.Context, r RollbackRequest) error {
	return u.c.do(ctx, http.MethodPost, "/v1/rollback", r, nil)
}

// do sends one request with a JSON body (nil for none) and decodes a JSON
// answer into out (nil to ignore it).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body *bytes.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://local"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("not reachable at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("reading the answer of %s: %w", path, err)
		}
	}
	return nil
}

// DrainRequest is the body of POST /v1/drain on the connector's socket:
// the updater asks the connector to stop taking sessions before it reboots
// into an update. Sessions still open after Grace end with Reason.
type DrainRequest struct {
	Reason string   `json:"reason"` // "update_reboot"
	Grace  Duration `json:"grace"`
}

// Drainer is implemented by a Backend that can drain before a reboot
// (POST /v1/drain; the call returns when the drain is over).
type Drainer interface {
	Drain(ctx context.Context, r DrainRequest) error
}

// ImageUpdater is implemented by a Backend that forwards the console's
// update requests to the appliance's updater (POST /v1/update/install on
// the connector's socket; a confirmed downgrade and
// POST /v1/update/rollback are refused by the handler before they reach
// it).
type ImageUpdater interface {
	InstallUpdate(ctx context.Context, r InstallRequest) error
	RollbackUpdate(ctx context.Context, r RollbackRequest) error
}

// Drain asks the connector to drain for a reboot and waits for the end of
// the drain.
func (c *Client) Drain(ctx context.Context, r DrainRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/drain", r, nil)
}

// InstallUpdate forwards an install request through the connector.
func (c *Client) InstallUpdate(ctx context.Context, r InstallRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/update/install", r, nil)
}

// RollbackUpdate asks the connector to relay a rollback: it refuses (403
// UpdateCodeNotPermitted). Use UpdaterClient.Rollback on UpdaterSocket.
func (c *Client) RollbackUpdate(ctx context.Context, r RollbackRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/update/rollback", r, nil)
}
