package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/updates"
)

// envUpdaterSocket overrides where the appliance's updater listens.
const envUpdaterSocket = "PAM_UPDATER_SOCKET"

// newUpdates wires the image updates: downloads go to
// DATA/update/incoming over HTTPS to the control plane with the current
// identity's certificate, the configured roots and proxy; the updater is
// reached at its socket when there is one.
func newUpdates(cfg config.Config, roots *x509.CertPool, proxy *url.URL, dataDir, socket string, log *slog.Logger, current func() *identity.Identity) (*updates.Manager, error) {
	if socket == "" {
		socket = localapi.UpdaterSocket
	}
	return updates.New(updates.Options{
		Dir:           filepath.Join(dataDir, "update", "incoming"),
		BaseURL:       strings.TrimRight(cfg.ControlPlaneURL, "/"),
		Updater:       localapi.NewUpdaterClient(socket),
		UpdaterSocket: socket,
		Logger:        log,
		HTTPClient: func() (*http.Client, error) {
			id := current()
			if id == nil {
				return nil, errors.New("not enrolled")
			}
			tr := &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{*id.TLSCertificate()},
					MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
				TLSHandshakeTimeout: 15 * time.Second,
			}
			if proxy != nil {
				tr.Proxy = http.ProxyURL(proxy)
			}
			// No overall timeout: the bundle is ~120 MB on slow links; the
			// download's context bounds it.
			return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
				return errors.New("the control plane redirected an update download: refused")
			}}, nil
		},
	})
}
