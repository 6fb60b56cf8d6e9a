package install

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/trust"
)

// CodeNotEnrolled refuses an install while the connector has no identity:
// the trial boot's gate could never see it Online with its ID.
// (Not yet among localapi's UpdateCode* constants.)
const CodeNotEnrolled = "update_not_enrolled"

// Refusal is an install refused before anything was written: a stable
// code (localapi.UpdateCode*), what is wrong, and what to do.
type Refusal struct {
	Code    string
	Message string
	Hint    string
	Err     error // the underlying error, if any
}

func (r *Refusal) Error() string {
	if r.Hint != "" {
		return r.Message + " (hint: " + r.Hint + ")"
	}
	return r.Message
}

func (r *Refusal) Unwrap() error { return r.Err }

// APIError turns r into the local API's error (409 Conflict).
func (r *Refusal) APIError() *localapi.Error {
	return &localapi.Error{Status: http.StatusConflict, Code: r.Code, Message: r.Message, Hint: r.Hint}
}

func refuse(code, hint string, err error, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Message: fmt.Sprintf(format, args...), Hint: hint, Err: err}
}

// trustRefusal maps the trust package's errors to refusals.
func trustRefusal(err error) *Refusal {
	switch {
	case errors.Is(err, trust.ErrExpired):
		return refuse(localapi.UpdateCodeExpired, "get a newer offer or update ISO, or check this appliance's clock (the health screen shows its offset)", err,
			"refused before anything was written: %v", err)
	case errors.Is(err, trust.ErrRollback):
		return refuse(localapi.UpdateCodeReplayed, "this is an older offer than one already seen; get the current one from the control plane or a newer ISO", err,
			"refused before anything was written: %v", err)
	case errors.Is(err, trust.ErrUntrusted):
		return refuse(localapi.UpdateCodeUntrusted, "only updates signed with VaultPAM's release keys install; get the update from VaultPAM", err,
			"refused before anything was written: %v", err)
	case errors.Is(err, trust.ErrNoTarget):
		return refuse(localapi.UpdateCodeUntrusted, "the signed metadata does not list this file; get the update and its metadata from the same release", err,
			"refused before anything was written: %v", err)
	}
	return refuse(localapi.UpdateCodeUntrusted, "the update's metadata could not be checked; get the update again", err,
		"refused before anything was written: the update metadata does not verify: %v", err)
}
