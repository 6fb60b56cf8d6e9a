package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/vaultpam/appliance/connector/atomicfile"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
)

// recipientFile keeps the control plane's support-bundle key (a public
// key) in the data directory, so a bundle can be encrypted for the vendor
// while the tunnel is down after a restart.
const recipientFile = "support-recipient"

func (a *Agent) loadRecipient() string {
	if a.opt.DataDir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(a.opt.DataDir, recipientFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// noteRecipient remembers a recipient the control plane announced.
func (a *Agent) noteRecipient(r string) {
	a.mu.Lock()
	same := r == "" || r == a.recipient
	if !same {
		a.recipient = r
	}
	a.mu.Unlock()
	if same || a.opt.DataDir == "" {
		return
	}
	if err := atomicfile.WriteFile(filepath.Join(a.opt.DataDir, recipientFile), []byte(r+"\n"), 0o600); err != nil {
		a.log.Warn("keeping the support-bundle key", "err", err)
	}
}

// UploadSupportBundle implements localapi.SupportUploader: it sends an
// encrypted support bundle to the control plane through the tunnel.
func (a *Agent) UploadSupportBundle(ctx context.Context, name string, size int64, r io.Reader) (localapi.SupportReceipt, error) {
	a.mu.Lock()
	link, st, reason := a.cur, a.state, a.reason
	a.mu.Unlock()
	down := func(why string) error {
		return &localapi.Error{Status: http.StatusServiceUnavailable, Code: localapi.CodeTunnelDown,
			Message: "the tunnel to the control plane is down (" + why + "): the support bundle cannot reach it",
			Hint:    "run the diagnostics (`vaultpam-connector diagnose`, or the console's diagnostics)"}
	}
	if link == nil || st != state.Online {
		why := st.Label()
		if reason != "" {
			why += ": " + reason
		}
		return localapi.SupportReceipt{}, down(why)
	}
	id, err := link.SendStream(ctx, protocol.StreamHeader{Type: protocol.StreamSupportBundle, Name: name, Size: size}, r)
	var se *protocol.StreamError
	switch {
	case err == nil:
		a.log.Info("support bundle uploaded", "id", id, "size", size)
		return localapi.SupportReceipt{ID: id, Size: size}, nil
	case errors.Is(err, tunnel.ErrTunnelDown):
		return localapi.SupportReceipt{}, down(err.Error())
	case errors.As(err, &se):
		hint := "try again later"
		if se.Code == protocol.StreamTooLarge || se.Code == protocol.StreamUnknownType {
			hint = "hand the encrypted bundle over another way"
		}
		return localapi.SupportReceipt{}, &localapi.Error{Status: http.StatusBadGateway, Code: se.Code, Message: "the control plane refused the support bundle: " + se.Message, Hint: hint}
	}
	return localapi.SupportReceipt{}, &localapi.Error{Status: http.StatusBadGateway, Code: "upload_failed", Message: "sending the support bundle: " + err.Error(), Hint: "try again; if it keeps failing, run the diagnostics"}
}
