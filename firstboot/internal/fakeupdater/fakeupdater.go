// Package fakeupdater is an in-process stand-in for the appliance's image
// updater (vaultpam-update), for the console's tests: it serves the
// updater's local API with connector/localapi's types on a Unix socket,
// the way update/daemon does (GET /v1/status, POST /v1/install, POST
// /v1/rollback; 202 when accepted, an ErrorBody otherwise), keeps the
// image status the test sets, and records every request it accepted.
package fakeupdater

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/vaultpam/appliance/connector/localapi"
)

// Updater is a fake updater. The zero value is not usable; use New.
type Updater struct {
	mu        sync.Mutex
	im        localapi.Image
	installs  []localapi.InstallRequest
	rollbacks []localapi.RollbackRequest
	refuse    *localapi.Error
	// olderOnCD: the CD-ROM's update is older than the running image, so
	// an install without confirm_downgrade is refused update_not_newer.
	olderOnCD bool
}

// New returns a fake reporting im.
func New(im localapi.Image) *Updater { return &Updater{im: im} }

// Set replaces the image status.
func (u *Updater) Set(im localapi.Image) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.im = im
}

// Image returns the image status now.
func (u *Updater) Image() localapi.Image {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.im
}

// Refuse makes the next install or rollback fail with e (nil: accept).
func (u *Updater) Refuse(e *localapi.Error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.refuse = e
}

// OlderOnCD says the CD-ROM holds an older version than the running one:
// installs without confirm_downgrade are refused as update_not_newer.
func (u *Updater) OlderOnCD(older bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.olderOnCD = older
}

// Installs returns the install requests accepted or refused so far.
func (u *Updater) Installs() []localapi.InstallRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]localapi.InstallRequest(nil), u.installs...)
}

// Rollbacks returns the rollback requests received so far.
func (u *Updater) Rollbacks() []localapi.RollbackRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]localapi.RollbackRequest(nil), u.rollbacks...)
}

func (u *Updater) install(r localapi.InstallRequest) *localapi.Error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.installs = append(u.installs, r)
	if e := u.refuse; e != nil {
		u.refuse = nil
		return e
	}
	av := u.im.Available
	switch {
	case r.Source != "cdrom":
		return &localapi.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf("the fake updater installs from the CD-ROM only, not %q", r.Source)}
	case av == nil:
		return &localapi.Error{Status: http.StatusConflict, Code: localapi.UpdateCodeNothingHere, Message: "no update on the CD-ROM", Hint: "attach an ISO labelled VPAM-UPDATE"}
	case u.olderOnCD && !r.ConfirmDowngrade:
		return &localapi.Error{Status: http.StatusConflict, Code: localapi.UpdateCodeNotNewer,
			Message: fmt.Sprintf("%s is not newer than the running %s", av.Version, u.im.Version), Hint: "confirm the downgrade to install an older image"}
	case u.im.Pending:
		return &localapi.Error{Status: http.StatusConflict, Code: localapi.UpdateCodeBusy, Message: "another change is in progress", Hint: "wait until it ends"}
	}
	// What the real updater shows as soon as it answered 202.
	u.im.Pending = true
	u.im.Update = &localapi.UpdateStatus{Version: av.Version, State: localapi.UpdateDownloading, Source: "cdrom"}
	u.im.Available = nil
	return nil
}

func (u *Updater) rollback(r localapi.RollbackRequest) *localapi.Error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.rollbacks = append(u.rollbacks, r)
	if !r.Confirm {
		return &localapi.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "a rollback needs confirm: true"}
	}
	if e := u.refuse; e != nil {
		u.refuse = nil
		return e
	}
	if o := u.im.Other; o == nil || o.State != "good" {
		return &localapi.Error{Status: http.StatusConflict, Code: localapi.UpdateCodeNothingHere, Message: "the other slot holds no image that booted well", Hint: "there is nothing to roll back to"}
	}
	u.im.Pending = true
	return nil
}

// Handler serves the updater's local API.
func (u *Updater) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, u.Image())
	})
	mux.HandleFunc("POST /v1/install", func(w http.ResponseWriter, r *http.Request) {
		var req localapi.InstallRequest
		if e := decode(r, &req); e != nil {
			writeError(w, e)
			return
		}
		if e := u.install(req); e != nil {
			writeError(w, e)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /v1/rollback", func(w http.ResponseWriter, r *http.Request) {
		var req localapi.RollbackRequest
		if e := decode(r, &req); e != nil {
			writeError(w, e)
			return
		}
		if e := u.rollback(req); e != nil {
			writeError(w, e)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	return mux
}

// decode is strict like the real updater's: an unknown field is a bad
// request, so a console that sends one fails its test.
func decode(r *http.Request, v any) *localapi.Error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &localapi.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf("the request body does not decode: %v", err)}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *localapi.Error) {
	code := e.Status
	if code == 0 {
		code = http.StatusBadRequest
	}
	writeJSON(w, code, localapi.ErrorBody{Code: e.Code, Message: e.Message, Hint: e.Hint})
}

// Serve serves u on a Unix socket at path until the test ends.
func Serve(t testing.TB, u *Updater, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listening on %s: %v", path, err)
	}
	srv := &http.Server{Handler: u.Handler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}
