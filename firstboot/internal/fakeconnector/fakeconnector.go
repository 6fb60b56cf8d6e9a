// Package fakeconnector is an in-process stand-in for the connector's local
// API, for the console's tests: a localapi.Backend whose state the test
// sets, that counts token hand-overs and walks awaiting_token → enrolling →
// online like the real connector, and takes support bundles as the
// connector does (localapi.SupportUploader): it keeps them instead of
// sending them through a tunnel, and answers tunnel_down while the test
// says the tunnel is down.
package fakeconnector

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
)

// Backend is a fake connector. The zero value is not usable; use New.
type Backend struct {
	mu       sync.Mutex
	st       localapi.Status
	submits  []string
	polls    int
	Refuse   map[string]*localapi.Error // canonical token → error to answer
	EnrolsIn int                        // status polls from enrolling to online; 0 = 2

	// Pairing (pairing.go).
	codes    []localapi.Pairing
	pairs    PairingState
	pairFrom string

	// Support bundles.
	bundles []Bundle
	down    bool
}

// Bundle is a support bundle the fake took: its name and its (encrypted)
// bytes.
type Bundle struct {
	Name string
	Data []byte
}

// New returns a fake awaiting a token.
func New() *Backend {
	return &Backend{st: localapi.Status{State: state.AwaitingToken.String(), StateLabel: state.LabelOf(state.AwaitingToken.String()),
		Mode: localapi.ModeAutonomousRestart, DataDir: "/data", DataDurable: true, Version: "0.1.0"},
		Refuse: map[string]*localapi.Error{}}
}

// Set replaces the status.
func (b *Backend) Set(st localapi.Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st.StateLabel = state.LabelOf(st.State)
	b.st = st
}

// Submits returns the tokens handed over so far (canonical form).
func (b *Backend) Submits() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.submits...)
}

// Status implements localapi.Backend.
func (b *Backend) Status() localapi.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st.State == state.Enrolling.String() {
		b.polls++
		n := b.EnrolsIn
		if n == 0 {
			n = 2
		}
		if b.polls >= n {
			b.st.State, b.st.StateLabel = state.Online.String(), state.LabelOf(state.Online.String())
			if b.st.ConnectorID == "" {
				b.st.ConnectorID = "conn-0001"
			}
			b.st.Reason, b.st.Hint = "", ""
			b.st.Since = time.Now().UTC()
			b.st.LastHeartbeat = time.Now().UTC()
		}
	}
	return b.st
}

// SubmitToken implements localapi.Backend.
func (b *Backend) SubmitToken(ctx context.Context, token string) error {
	c, err := protocol.ParseToken(token)
	if err != nil {
		return &localapi.Error{Code: "token_syntax", Message: err.Error()}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.submits = append(b.submits, c)
	if e := b.Refuse[c]; e != nil {
		return e
	}
	b.st.State, b.st.StateLabel = state.Enrolling.String(), state.LabelOf(state.Enrolling.String())
	b.polls = 0
	return nil
}

// TunnelDown makes support-bundle uploads fail as the connector's do
// while its tunnel is down (localapi.CodeTunnelDown).
func (b *Backend) TunnelDown(down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = down
}

// Bundles returns the support bundles taken so far.
func (b *Backend) Bundles() []Bundle {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Bundle(nil), b.bundles...)
}

// UploadSupportBundle implements localapi.SupportUploader.
func (b *Backend) UploadSupportBundle(ctx context.Context, name string, size int64, r io.Reader) (localapi.SupportReceipt, error) {
	data, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return localapi.SupportReceipt{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return localapi.SupportReceipt{}, &localapi.Error{Status: http.StatusServiceUnavailable, Code: localapi.CodeTunnelDown,
			Message: "the tunnel to the control plane is down", Hint: "run the diagnostics"}
	}
	b.bundles = append(b.bundles, Bundle{Name: name, Data: data})
	return localapi.SupportReceipt{ID: fmt.Sprintf("sb-%04d", len(b.bundles)), Size: int64(len(data))}, nil
}

// Serve serves b on a Unix socket at path until the test ends.
func Serve(t testing.TB, b *Backend, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listening on %s: %v", path, err)
	}
	srv := &http.Server{Handler: localapi.Handler(b)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}
