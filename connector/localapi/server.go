package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
)

// Backend is what the connector implements for the local API. Methods are
// called concurrently from HTTP handlers.
type Backend interface {
	// Status returns a snapshot; it must not block on the network.
	Status() Status
	// SubmitToken hands an enrolment or recovery token to the connector.
	// It returns once the token is accepted for processing (syntax checked,
	// state allows it); enrolment progress shows in Status. Errors that
	// wrap an *Error reach the client with their code, message and hint.
	SubmitToken(ctx context.Context, token string) error
}

// Error is an error with a stable code and a hint for people. Backends
// return it (possibly wrapped) so the client can show what to do next.
type Error struct {
	Status  int // HTTP status; 0 means 400
	Code    string
	Message string
	Hint    string
}

func (e *Error) Error() string { return e.Message }

// Handler returns the HTTP handler for b:
//
//	GET  /v1/status          → Status
//	POST /v1/token           ← TokenRequest, → 202 Accepted
//	POST /v1/drain           ← DrainRequest (Backend implements Drainer)
//	POST /v1/update/install  ← InstallRequest (Backend implements ImageUpdater); never with confirm_downgrade (403)
//	POST /v1/update/rollback ← RollbackRequest: always 403 update_not_permitted (the console asks the updater directly)
//	POST /v1/support-bundle?name=N ← the encrypted bundle, → SupportReceipt (Backend implements SupportUploader)
//	POST /v1/pair, DELETE /v1/pair (Backend implements Pairer; pair.go)
func Handler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/support-bundle", serveSupportBundle(b))
	pairRoutes(mux, b)
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Status())
	})
	mux.HandleFunc("POST /v1/token", func(w http.ResponseWriter, r *http.Request) {
		var req TokenRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			writeError(w, &Error{Code: "bad_request", Message: "request body is not a token request"})
			return
		}
		if err := b.SubmitToken(r.Context(), req.Token); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /v1/drain", func(w http.ResponseWriter, r *http.Request) {
		d, ok := b.(Drainer)
		if !ok {
			writeError(w, &Error{Status: http.StatusNotImplemented, Code: "not_supported", Message: "this connector cannot drain on request"})
			return
		}
		var req DrainRequest
		if !decodeBody(w, r, &req) {
			return
		}
		if err := d.Drain(r.Context(), req); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("POST /v1/update/install", func(w http.ResponseWriter, r *http.Request) {
		u, ok := b.(ImageUpdater)
		var req InstallRequest
		if !ok {
			writeError(w, &Error{Status: http.StatusNotImplemented, Code: UpdateCodeNothingHere, Message: "this connector does not run on the appliance: there is no image to update"})
			return
		}
		if !decodeBody(w, r, &req) {
			return
		}
		if req.ConfirmDowngrade {
			writeError(w, notRelayed("a downgrade's confirmation"))
			return
		}
		if err := u.InstallUpdate(r.Context(), req); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /v1/update/rollback", func(w http.ResponseWriter, r *http.Request) {
		u, ok := b.(ImageUpdater)
		var req RollbackRequest
		if !ok {
			writeError(w, &Error{Status: http.StatusNotImplemented, Code: UpdateCodeNothingHere, Message: "this connector does not run on the appliance: there is no image to roll back"})
			return
		}
		if !decodeBody(w, r, &req) {
			return
		}
		if err := notRelayed("a rollback"); err != nil {
			writeError(w, err)
			return
		}
		if err := u.RollbackUpdate(r.Context(), req); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	return mux
}

// notRelayed refuses to carry an operator's request (what) to the
// updater: the updater takes those only from the operator's own
// connection (root or the console's user, by peer credentials), and the
// connector, whose requests all carry its uid, must never speak for the
// operator.
func notRelayed(what string) error {
	return &Error{Status: http.StatusForbidden, Code: UpdateCodeNotPermitted,
		Message: what + " is not relayed by the connector",
		Hint:    "the console asks the updater directly on " + UpdaterSocket}
}

// decodeBody reads a small JSON request body into v, answering a bad
// request itself.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, &Error{Code: "bad_request", Message: "request body does not decode: " + err.Error()})
		return false
	}
	return true
}

// Listen creates the Unix socket at path with mode 0660 (owner and group
// only), replacing a stale socket left by a previous run; a socket some
// process still listens on is never replaced (an error says so). The
// directory is created 0750 if missing.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("another process is listening on %s", path)
		}
		os.Remove(path) // stale: left by a process that is gone
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting socket permissions: %w", err)
	}
	return l, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
	}
	code := e.Status
	if code == 0 {
		code = http.StatusBadRequest
	}
	writeJSON(w, code, ErrorBody{Code: e.Code, Message: e.Message, Hint: e.Hint})
}
