package privileged

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// Client makes the console's requests to the helper over its Unix socket.
// It is safe for concurrent use. Requests end with their ctx; an action
// the helper has started goes through even if ctx ends first.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path ("" = DefaultSocket).
func NewClient(path string) *Client {
	if path == "" {
		path = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr}}
}

// WriteSettings has the helper validate s and write it to /config. It
// returns the paths written, relative to the root.
func (c *Client) WriteSettings(ctx context.Context, s settings.Settings) ([]string, error) {
	var d Done
	if err := c.action(ctx, WriteSettings, SettingsBody(s), &d); err != nil {
		return nil, err
	}
	return d.Files, nil
}

// TrialNetwork has the helper apply s's network settings on trial: they
// go back by themselves at the returned deadline unless KeepNetwork comes
// first.
func (c *Client) TrialNetwork(ctx context.Context, s settings.Settings) (TrialState, error) {
	var d Done
	if err := c.action(ctx, TrialNetwork, SettingsBody(s), &d); err != nil {
		return TrialState{}, err
	}
	if d.Trial == nil {
		return TrialState{}, fmt.Errorf("the console helper's answer to %s has no deadline", TrialNetwork)
	}
	return *d.Trial, nil
}

// KeepNetwork ends the trial, keeping the new settings.
func (c *Client) KeepNetwork(ctx context.Context) error { return c.action(ctx, KeepNetwork, nil, nil) }

// RevertNetwork ends the trial now with the previous settings.
func (c *Client) RevertNetwork(ctx context.Context) error {
	return c.action(ctx, RevertNetwork, nil, nil)
}

// TrialStatus says whether a trial runs, until when, and when the
// previous settings last came back.
func (c *Client) TrialStatus(ctx context.Context) (TrialState, error) {
	b, err := c.read(ctx, TrialStatus, MaxBody)
	if err != nil {
		return TrialState{}, err
	}
	var st TrialState
	if err := json.Unmarshal(b, &st); err != nil {
		return TrialState{}, fmt.Errorf("reading the console helper's trial status: %w", err)
	}
	return st, nil
}

// TrustCA adds the PEM certificates to /config/ca.pem.
func (c *Client) TrustCA(ctx context.Context, pemCerts []byte) error {
	return c.raw(ctx, TrustCA, pemCerts)
}

// ApplyNetwork sets the hostname from /config and restarts networkd and
// timesyncd.
func (c *Client) ApplyNetwork(ctx context.Context) error {
	return c.action(ctx, ApplyNetwork, nil, nil)
}

// RestartConnector restarts vaultpam-connector.service.
func (c *Client) RestartConnector(ctx context.Context) error {
	return c.action(ctx, RestartConnector, nil, nil)
}

// Reboot asks for a reboot.
func (c *Client) Reboot(ctx context.Context) error { return c.action(ctx, Reboot, nil, nil) }

// PowerOff asks for a power-off.
func (c *Client) PowerOff(ctx context.Context) error { return c.action(ctx, PowerOff, nil, nil) }

// GuestInfo returns VMware Tools' guestinfo.ovfEnv, raw and unparsed. An
// *Error with Code CodeNotFound means there is none.
func (c *Client) GuestInfo(ctx context.Context) ([]byte, error) {
	return c.read(ctx, GuestInfo, MaxGuestInfo)
}

// VerityStatus returns `dmsetup status --target verity`, raw.
func (c *Client) VerityStatus(ctx context.Context) ([]byte, error) {
	return c.read(ctx, VerityStatus, MaxVerityStatus)
}

func (c *Client) action(ctx context.Context, req Request, body any, out *Done) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, http.MethodPost, req, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		out = &Done{}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxBody)).Decode(out); err != nil {
		return fmt.Errorf("reading the console helper's answer to %s: %w", req, err)
	}
	return nil
}

// raw posts body as it is (PEM) and reads a Done.
func (c *Client) raw(ctx context.Context, req Request, body []byte) error {
	resp, err := c.do(ctx, http.MethodPost, req, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var d Done
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxBody)).Decode(&d); err != nil {
		return fmt.Errorf("reading the console helper's answer to %s: %w", req, err)
	}
	return nil
}

func (c *Client) read(ctx context.Context, req Request, max int64) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, req, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading the console helper's answer to %s: %w", req, err)
	}
	if int64(len(b)) > max {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the answer to %s is larger than %d bytes", req, max)}
	}
	return b, nil
}

// do makes one request and turns an error answer into *Error.
func (c *Client) do(ctx context.Context, method string, req Request, body io.Reader) (*http.Response, error) {
	hr, err := http.NewRequestWithContext(ctx, method, "http://helper"+Endpoint{Request: req}.Path(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, &Error{Code: "unreachable", Message: fmt.Sprintf("the console helper is not reachable at %s: %v", c.socket, errors.Unwrap(err)),
			Hint: "it is started by vaultpam-console-helper.socket; reboot the appliance if this stays"}
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var eb ErrorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
		if json.Unmarshal(b, &eb) != nil || eb.Message == "" {
			return nil, &Error{Status: resp.StatusCode, Code: "http", Message: fmt.Sprintf("the console helper answered %s to %s", resp.Status, req)}
		}
		return nil, &Error{Status: resp.StatusCode, Code: eb.Code, Message: eb.Message, Hint: eb.Hint}
	}
	return resp, nil
}
