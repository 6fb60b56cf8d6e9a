package enrol

import (
	"context"
	"errors"

	"github.com/vaultpam/appliance/connector/protocol"
)

// StartPairing asks the control plane for a pairing (protocol/pair.go).
// The answer's DeviceCode is a secret: keep it in memory only.
func (c *Client) StartPairing(ctx context.Context, req protocol.PairStartRequest) (protocol.PairStart, error) {
	hc := c.httpClient(nil)
	defer hc.CloseIdleConnections()
	var ps protocol.PairStart
	if err := c.post(ctx, hc, protocol.PairStartPath, req, &ps); err != nil {
		return ps, err
	}
	code, err := protocol.ParseUserCode(ps.UserCode)
	switch {
	case err != nil:
		return protocol.PairStart{}, errors.New("control plane answered the pairing with a user code that does not parse")
	case !protocol.ValidDeviceCode(ps.DeviceCode):
		return protocol.PairStart{}, errors.New("control plane answered the pairing with a malformed device code")
	case ps.ExpiresIn <= 0 || ps.VerificationURI == "":
		return protocol.PairStart{}, errors.New("control plane answered the pairing without an expiry or a verification URI")
	}
	ps.UserCode = code
	return ps, nil
}

// PollPairing asks whether the pairing of deviceCode was decided. Not yet,
// denied, expired and the like come back as *Error with one of the
// protocol.CodePair* codes; approval as the result, whose Token is
// presented to Enrol at once and never kept.
func (c *Client) PollPairing(ctx context.Context, deviceCode string) (protocol.PairResult, error) {
	hc := c.httpClient(nil)
	defer hc.CloseIdleConnections()
	var res protocol.PairResult
	if err := c.post(ctx, hc, protocol.PairPollPath, protocol.PairPollRequest{DeviceCode: deviceCode}, &res); err != nil {
		return protocol.PairResult{}, err
	}
	if _, err := protocol.ParseToken(res.Token); err != nil {
		return protocol.PairResult{}, errors.New("control plane approved the pairing but its token does not parse")
	}
	return res, nil
}
