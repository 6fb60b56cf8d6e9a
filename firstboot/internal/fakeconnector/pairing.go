package fakeconnector

import (
	"context"
	"net/http"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
)

// Pairing, as the real connector does it (connector/README.md,
// "Pairing"), driven by the test: StartPairing shows the code the test
// put in Codes (one a pairing, in order), Expire replaces it with the
// next, Deny and Approve decide it. Backend implements localapi.Pairer.

// PairingState is what the test sees of the fake's pairing.
type PairingState struct {
	Starts, Stops int // POST and DELETE /v1/pair so far
}

// SetCodes sets the codes the fake hands out, in order.
func (b *Backend) SetCodes(codes ...localapi.Pairing) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.codes = append([]localapi.Pairing(nil), codes...)
}

// Pairings returns how often pairing was started and stopped.
func (b *Backend) Pairings() PairingState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pairs
}

// nextCodeLocked takes the next code; nil when the test gave none.
func (b *Backend) nextCodeLocked() *localapi.Pairing {
	if len(b.codes) == 0 {
		return nil
	}
	c := b.codes[0]
	b.codes = b.codes[1:]
	return &c
}

// StartPairing implements localapi.Pairer.
func (b *Backend) StartPairing(ctx context.Context) (localapi.Pairing, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pairs.Starts++
	if b.st.State == state.Pairing.String() {
		if b.st.Pairing != nil {
			return *b.st.Pairing, nil
		}
		return localapi.Pairing{}, nil
	}
	if b.st.State != state.AwaitingToken.String() && b.st.State != state.NeedsRecovery.String() {
		return localapi.Pairing{}, &localapi.Error{Status: http.StatusConflict, Code: "not_pairable",
			Message: "the connector is " + state.LabelOf(b.st.State) + "; pairing is for a connector awaiting a token or needing recovery"}
	}
	b.pairFrom = b.st.State
	b.setLocked(state.Pairing.String(), "", "")
	b.st.Pairing = b.nextCodeLocked()
	if b.st.Pairing == nil {
		b.st.Reason = "asking the control plane for a code"
		return localapi.Pairing{}, nil
	}
	return *b.st.Pairing, nil
}

// StopPairing implements localapi.Pairer.
func (b *Backend) StopPairing(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st.State != state.Pairing.String() {
		return &localapi.Error{Status: http.StatusConflict, Code: "not_pairing", Message: "the connector is not pairing"}
	}
	b.pairs.Stops++
	b.endPairingLocked("pairing stopped on request")
	return nil
}

// Expire makes the code shown expire: the status says so, with no code,
// until Renew shows the next one.
func (b *Backend) Expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st.Pairing == nil {
		return
	}
	b.st.Reason = "code " + b.st.Pairing.UserCode + " expired at " + b.st.Pairing.ExpiresAt.UTC().Format(time.RFC3339) + "; asking for a new code"
	b.st.Pairing = nil
}

// Renew shows the next code after Expire.
func (b *Backend) Renew() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Pairing = b.nextCodeLocked()
	b.st.Reason = ""
}

// Deny is an administrator denying the code shown.
func (b *Backend) Deny() {
	b.mu.Lock()
	defer b.mu.Unlock()
	code := ""
	if b.st.Pairing != nil {
		code = b.st.Pairing.UserCode
	}
	b.endPairingLocked("an administrator denied the pairing of code " + code)
}

// Approve is an administrator approving the code shown: the connector
// enrols (and is Online after EnrolsIn status polls).
func (b *Backend) Approve() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Pairing = nil
	b.setLocked(state.Enrolling.String(), "", "")
	b.polls = 0
}

func (b *Backend) endPairingLocked(reason string) {
	from := b.pairFrom
	if from == "" {
		from = state.AwaitingToken.String()
	}
	b.st.Pairing = nil
	b.setLocked(from, reason, "")
}

func (b *Backend) setLocked(st, reason, hint string) {
	b.st.State, b.st.StateLabel = st, state.LabelOf(st)
	b.st.Reason, b.st.Hint = reason, hint
	b.st.Since = time.Now().UTC()
}

var _ localapi.Pairer = (*Backend)(nil)
