package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/lab/broker"
)

// Config configures a Lab.
type Config struct {
	Authority AuthorityConfig
	// Listen is the TLS address; "" means 127.0.0.1:0.
	Listen string
	// HeartbeatInterval is what connectors are told; 0 means 10 s.
	HeartbeatInterval time.Duration
	Logger            *slog.Logger // nil discards
}

// Lab is the whole lab control plane: the enrolment authority, the tunnel
// broker and the one TLS listener serving both. Resources route sessions
// to their connector through the broker.
type ControlPlane struct {
	Authority *Authority
	Broker    *broker.Broker
	Server    *Server
	log       *slog.Logger

	endsMu sync.Mutex
	ends   []broker.SessionEnd // the latest maxEnds, oldest first
}

// maxEnds bounds the session ends a ControlPlane remembers.
const maxEnds = 1000

// SessionEnds returns the ends recorded for session id: the broker's own
// view (By "control_plane") and the connector's report (By "connector").
func (l *ControlPlane) SessionEnds(id string) []broker.SessionEnd {
	l.endsMu.Lock()
	defer l.endsMu.Unlock()
	var out []broker.SessionEnd
	for _, e := range l.ends {
		if e.SessionID == id {
			out = append(out, e)
		}
	}
	return out
}

// New opens the state, starts the broker and listens.
func New(cfg Config) (*ControlPlane, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a, err := OpenAuthority(cfg.Authority)
	if err != nil {
		return nil, err
	}
	l, err := newOn(a, cfg)
	if err != nil {
		a.Close()
		return nil, err
	}
	return l, nil
}

func newOn(a *Authority, cfg Config) (*ControlPlane, error) {
	bc := broker.DefaultConfig()
	if cfg.HeartbeatInterval > 0 {
		bc.HeartbeatInterval = cfg.HeartbeatInterval
	}
	bc.Registry = &brokerRegistry{a}
	bc.OfferFor = a.StandingOffer
	bc.SupportRecipient = a.SupportRecipient()
	bc.OnSupportBundle = a.StoreBundle
	bc.ClientCAs = a.ca.Pool()
	bc.Authority = &brokerAuthority{a}
	bc.Logger = cfg.Logger
	bc.Now = a.cfg.Now
	var l *ControlPlane
	bc.OnSessionEnd = func(e broker.SessionEnd) {
		cfg.Logger.Info("session ended", "session", e.SessionID, "connector", e.ConnectorID, "by", e.By, "reason", e.Reason, "detail", e.Detail)
		l.endsMu.Lock()
		l.ends = append(l.ends, e)
		if len(l.ends) > maxEnds {
			l.ends = l.ends[len(l.ends)-maxEnds:]
		}
		l.endsMu.Unlock()
	}
	b, err := broker.New(bc)
	if err != nil {
		return nil, err
	}
	srv, err := NewServer(ServerConfig{Authority: a, Listen: cfg.Listen, Tunnel: tunnelFunc(b.ServeConn), Logger: cfg.Logger})
	if err != nil {
		b.Close()
		return nil, err
	}
	l = &ControlPlane{Authority: a, Broker: b, Server: srv, log: cfg.Logger}
	a.OnChange(func(c Connector) {
		// A revocation or a recovery makes the certificates in use void:
		// cut their tunnels so the broker checks the connector again.
		if c.Status == StatusRevoked || c.Status == StatusPending && len(c.Revoked) > 0 {
			if n := srv.Disconnect(c.ID); n > 0 {
				cfg.Logger.Info("tunnel cut after certificate change", "connector", c.ID, "status", c.Status)
			}
		}
	})
	return l, nil
}

type tunnelFunc func(context.Context, *tls.Conn) error

func (f tunnelFunc) ServeTunnel(ctx context.Context, c *tls.Conn) { f(ctx, c) }

// URL is the control plane URL.
func (l *ControlPlane) URL() string { return l.Server.URL() }

// Close ends every tunnel and session, stops listening and releases the
// state directory.
func (l *ControlPlane) Close() error {
	l.Broker.Close()
	err := l.Server.Close()
	return errors.Join(err, l.Authority.Close())
}

// Connect opens a session to resource name through its connector. Errors
// are *broker.Error (connector offline, target not allowed, …) or say the
// resource is unknown.
func (l *ControlPlane) Connect(ctx context.Context, name string) (*broker.Session, error) {
	r, ok := l.Authority.Resource(name)
	if !ok {
		return nil, fmt.Errorf("no resource %q (add it with `vaultpam-lab resources add`)", name)
	}
	if c, ok := l.Authority.Connector(r.Connector); ok && c.Status == StatusRevoked {
		return nil, &broker.Error{ConnectorID: r.Connector, Target: r.Address, Reason: protocol.ReasonConnectorOffline, Message: "connector " + r.Connector + " is revoked"}
	}
	return l.Broker.Dial(ctx, r.Connector, r.Address)
}

// brokerRegistry lets the broker check certificates against the
// authority and record statuses and heartbeats in the registry.
type brokerRegistry struct{ a *Authority }

func (r *brokerRegistry) Authorize(_ context.Context, id string, cert *x509.Certificate) error {
	cid, err := r.a.Authenticate(cert)
	var ae *APIError
	switch {
	case err == nil && cid == id:
		return nil
	case err == nil:
		return fmt.Errorf("%w: certificate names %s", broker.ErrUnknownConnector, cid)
	case errors.As(err, &ae) && ae.Code == protocol.CodeCertRevoked:
		return fmt.Errorf("%w: %s", broker.ErrRevoked, ae.Message)
	case errors.As(err, &ae) && (ae.Code == protocol.CodeCertUnknown || ae.Code == protocol.CodeCertExpired):
		// The broker verified the chain and the validity already (an
		// expiry between the two checks reads as unknown here).
		return fmt.Errorf("%w: %s", broker.ErrUnknownConnector, ae.Message)
	}
	return err
}

func (r *brokerRegistry) Update(u broker.StatusUpdate) {
	if !u.LastHeartbeat.IsZero() {
		r.a.Heartbeat(u.ConnectorID, u.LastHeartbeat, u.Version)
	}
	if u.ClockOffset != nil {
		r.a.ClockReported(u.ConnectorID, *u.ClockOffset)
	}
	if u.ImageVersion != "" || u.Update != nil {
		r.a.UpdateReported(u.ConnectorID, u.ImageVersion, u.Update)
	}
	switch u.Status {
	case broker.StatusOnline:
		r.a.SetStatus(u.ConnectorID, StatusOnline, "")
	case broker.StatusDraining:
		r.a.SetStatus(u.ConnectorID, StatusOnline, "draining: takes no new sessions")
	case broker.StatusOffline:
		r.a.SetStatus(u.ConnectorID, StatusOffline, u.Reason)
	}
}

// brokerAuthority signs renewals over the tunnel.
type brokerAuthority struct{ a *Authority }

func (b *brokerAuthority) Renew(_ context.Context, id string, current *x509.Certificate, csr *x509.CertificateRequest) ([][]byte, error) {
	return b.a.Renew(id, current, csr)
}

// Renew issues a new certificate for connector id (the tunnel already
// authenticated it with current) for the same key: csr's public key must
// be current's, since renewal proves possession of that key only; a new
// key takes a recovery token. Older certificates stay valid until they
// expire.
func (a *Authority) Renew(id string, current *x509.Certificate, csr *x509.CertificateRequest) ([][]byte, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("renewal CSR signature: %w", err)
	}
	if current == nil || !broker.SameKey(csr.PublicKey, current.PublicKey) {
		return nil, errors.New("renewal CSR is not for the key of the certificate in use; a new key needs a recovery token")
	}
	if pub, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("renewal CSR key must be ECDSA P-256")
	}
	now := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.st.connector(id)
	if c == nil || c.Status == StatusRevoked {
		return nil, fmt.Errorf("connector %s is unknown or revoked", id)
	}
	cert, err := a.ca.issueClient(csr, id, now, a.cfg.CertTTL, a.cfg.Rand)
	if err != nil {
		return nil, err
	}
	c.Serials = append(c.Serials, cert.SerialNumber.Text(16))
	if err := a.st.save(a.cfg.StateDir); err != nil {
		c.Serials = slices.Delete(c.Serials, len(c.Serials)-1, len(c.Serials))
		return nil, err
	}
	return [][]byte{cert.Raw}, nil
}

// AdminRoutes mounts what needs the running server on the admin socket:
// POST /connect?resource=N opens a session (see connect.go), POST
// /updates offers an update and sends it at once when the connector is
// online.
func (l *ControlPlane) AdminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /connect", l.serveConnect)
	mux.HandleFunc("POST /updates", func(w http.ResponseWriter, r *http.Request) {
		var q offerReq
		if json.NewDecoder(r.Body).Decode(&q) != nil {
			adminReply(w, nil, errors.New("bad request"))
			return
		}
		o, err := l.OfferUpdate(q.Connector, q.File, q.Repo)
		adminReply(w, o, err)
	})
}

// OfferUpdate offers an update (Authority.OfferUpdate) and sends it to the
// connector at once when it is online.
func (l *ControlPlane) OfferUpdate(connectorID, file, repo string) (Offer, error) {
	o, err := l.Authority.OfferUpdate(connectorID, file, repo)
	if err != nil {
		return o, err
	}
	if w := l.Authority.StandingOffer(connectorID); w != nil {
		l.Broker.SendOffer(connectorID, w)
	}
	return o, nil
}
