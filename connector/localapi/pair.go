package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Pairing without a token (ARCHITECTURE.md, "Protocol", 2a): the console
// (or `vaultpam-connector pair`) asks the connector to pair; the connector
// gets a user code from the control plane and shows it in its status
// (state "pairing", Status.Pairing) until an administrator approves it on
// the verification page, then enrols and goes Online like with a token.
//
//	POST   /v1/pair  → 200 Pairing (the code), 202 Pairing{} (still asking:
//	                   Status.Reason says why), or an ErrorBody (409
//	                   not_pairable, 502 pairing_failed)
//	DELETE /v1/pair  → 200, or 409 not_pairing
//
// A code that expires is replaced by a new one by itself while the
// pairing is wanted; a denial sends the connector back to where it was
// (awaiting_token or needs_recovery) with the reason. A token handed over
// with POST /v1/token while pairing ends the pairing.
//
// Only public things are here: the user code and where to approve it. The
// pairing's device code and the token it leads to never leave the
// connector's memory.

// Pairing is the code to show while the connector pairs.
type Pairing struct {
	// UserCode is shown as is, in large characters: "K7Q2-MXW9".
	UserCode string `json:"user_code"`
	// VerificationURL is where an administrator approves it;
	// VerificationURLComplete has the code filled in (for a QR code).
	VerificationURL         string `json:"verification_url"`
	VerificationURLComplete string `json:"verification_url_complete"`
	// ExpiresAt is when the code expires (UTC); a new one follows.
	ExpiresAt time.Time `json:"expires_at"`
}

// Pairer is implemented by a Backend that can pair.
type Pairer interface {
	// StartPairing starts pairing, or returns the pairing under way. It
	// returns a zero Pairing while the code is still being asked for.
	StartPairing(ctx context.Context) (Pairing, error)
	// StopPairing ends the pairing under way.
	StopPairing(ctx context.Context) error
}

func pairRoutes(mux *http.ServeMux, b Backend) {
	mux.HandleFunc("POST /v1/pair", func(w http.ResponseWriter, r *http.Request) {
		p, ok := b.(Pairer)
		if !ok {
			writeError(w, &Error{Status: http.StatusNotImplemented, Code: "not_supported", Message: "this connector cannot pair"})
			return
		}
		pr, err := p.StartPairing(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		code := http.StatusOK
		if pr.UserCode == "" {
			code = http.StatusAccepted
		}
		writeJSON(w, code, pr)
	})
	mux.HandleFunc("DELETE /v1/pair", func(w http.ResponseWriter, r *http.Request) {
		p, ok := b.(Pairer)
		if !ok {
			writeError(w, &Error{Status: http.StatusNotImplemented, Code: "not_supported", Message: "this connector cannot pair"})
			return
		}
		if err := p.StopPairing(r.Context()); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// StartPairing asks the connector to pair (POST /v1/pair). The Pairing is
// zero while the connector is still asking the control plane for a code;
// follow Status then.
func (c *Client) StartPairing(ctx context.Context) (Pairing, error) {
	var p Pairing
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://connector/v1/pair", nil)
	if err != nil {
		return p, err
	}
	hc := *c.hc
	hc.Timeout = 30 * time.Second // the connector waits up to 10 s for the first code
	resp, err := hc.Do(req)
	if err != nil {
		return p, fmt.Errorf("connector not reachable at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return p, readError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return p, fmt.Errorf("reading the pairing: %w", err)
	}
	return p, nil
}

// StopPairing ends the pairing under way (DELETE /v1/pair).
func (c *Client) StopPairing(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, "http://connector/v1/pair", nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("connector not reachable at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	return nil
}
