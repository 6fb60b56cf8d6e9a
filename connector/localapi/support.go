package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// CodeTunnelDown is the ErrorBody code of a request that needs the tunnel
// (a support-bundle upload) while it is down.
const CodeTunnelDown = "tunnel_down"

// MaxSupportBundle bounds an upload's body (the tunnel's limit, protocol.MaxSupportBundle).
const MaxSupportBundle = 32 << 20

// SupportReceipt answers POST /v1/support-bundle: where the control plane
// keeps the bundle.
type SupportReceipt struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// SupportUploader is implemented by a Backend that can hand a support
// bundle (already encrypted) to the control plane through its tunnel.
// UploadSupportBundle reads exactly size bytes from r; an *Error with
// CodeTunnelDown means the tunnel is down.
type SupportUploader interface {
	UploadSupportBundle(ctx context.Context, name string, size int64, r io.Reader) (SupportReceipt, error)
}

// serveSupportBundle handles POST /v1/support-bundle?name=N: the body is
// the encrypted bundle, with its Content-Length.
func serveSupportBundle(b Backend) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := b.(SupportUploader)
		if !ok {
			writeError(w, &Error{Status: http.StatusNotImplemented, Code: "not_supported", Message: "this connector cannot upload support bundles"})
			return
		}
		name := r.URL.Query().Get("name")
		switch {
		case name == "" || len(name) > 255:
			writeError(w, &Error{Code: "bad_request", Message: "a support bundle needs ?name= (1 to 255 bytes)"})
			return
		case r.ContentLength <= 0:
			writeError(w, &Error{Status: http.StatusLengthRequired, Code: "bad_request", Message: "a support bundle needs a Content-Length"})
			return
		case r.ContentLength > MaxSupportBundle:
			writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
				Message: fmt.Sprintf("a support bundle of %d bytes exceeds the limit of %d", r.ContentLength, MaxSupportBundle)})
			return
		}
		rec, err := u.UploadSupportBundle(r.Context(), name, r.ContentLength, http.MaxBytesReader(w, r.Body, r.ContentLength))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rec)
	}
}

// UploadSupportBundle hands an encrypted support bundle to the connector,
// which sends it to the control plane through its tunnel. It waits as
// long as ctx allows (no 5 s limit: a bundle is MiBs on a slow link). An
// error from the connector is an *Error (CodeTunnelDown: the tunnel is
// down).
func (c *Client) UploadSupportBundle(ctx context.Context, name string, data []byte) (SupportReceipt, error) {
	var rec SupportReceipt
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://connector/v1/support-bundle?name="+url.QueryEscape(name), bytes.NewReader(data))
	if err != nil {
		return rec, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Length", strconv.Itoa(len(data)))
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return rec, fmt.Errorf("connector not reachable at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rec, readError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		return rec, fmt.Errorf("reading the upload's answer: %w", err)
	}
	return rec, nil
}
