package broker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// TunnelALPN is the ALPN protocol of the tunnel on the control plane's TLS
// listener.
const TunnelALPN = protocol.ALPNTunnel

// Config is what a Broker needs. Nil Config fields take DefaultConfig's
// values; Registry is required.
type Config struct {
	// HeartbeatInterval is sent to connectors; they heartbeat this often.
	HeartbeatInterval time.Duration
	// MissedHeartbeats intervals without a heartbeat mark a connector
	// Offline (its tunnel is closed and its sessions end): the deadline is
	// MissedHeartbeats×interval after the last heartbeat, so Offline comes
	// at most that long after heartbeats stop.
	MissedHeartbeats int
	// OpenTimeout bounds Dial: opening the stream and the connector's
	// answer (which includes its dial of the target).
	OpenTimeout time.Duration
	// HelloTimeout bounds the connector's hello after the TLS handshake.
	HelloTimeout time.Duration

	// ClientCAs verifies connectors' client certificates. Required: the
	// TLS layer only requests them (tls.RequestClientCert) and the broker
	// checks them after the handshake, so the connector gets a typed
	// refusal (cert_unknown, cert_expired…) instead of a TLS alert it
	// could not tell from a proxy's.
	ClientCAs *x509.CertPool

	Registry  Registry
	Authority Authority // nil: renewals are refused

	// OfferFor returns the image update standing for a connector, sent
	// after every hello; nil (or a nil result) means none.
	OfferFor func(connectorID string) *protocol.UpdateOffer

	// SupportRecipient is announced to connectors in hello_ack: the age
	// X25519 recipient ("age1…") they encrypt support bundles to. Empty
	// announces none.
	SupportRecipient string
	// OnSupportBundle receives a support bundle a connector uploads on a
	// typed stream (protocol.StreamSupportBundle): exactly b.Size bytes
	// from r (r fails with io.ErrUnexpectedEOF when the connector stops
	// short). It returns the ID the bundle is stored under. Calls for one
	// connector never overlap. Nil refuses support bundles
	// (unknown_stream_type).
	OnSupportBundle func(ctx context.Context, b SupportBundle, r io.Reader) (id string, err error)
	// MaxSupportBundle bounds a bundle's size; 0 means
	// protocol.MaxSupportBundle.
	MaxSupportBundle int64
	// StreamIdleTimeout ends an upload that moved no byte for this long; 0
	// means 60 s.
	StreamIdleTimeout time.Duration

	// OnSessionEnd is called once for every session end the broker sees
	// (By "control_plane") and for every end the connector reports (By
	// "connector"). It must not block. May be nil.
	OnSessionEnd func(SessionEnd)

	Logger *slog.Logger // nil discards
	Now    func() time.Time
	Rand   io.Reader // session IDs; nil means crypto/rand
}

// DefaultConfig returns the defaults of ARCHITECTURE.md, "Protocol": heartbeat every 10 s,
// Offline after 3 missed.
func DefaultConfig() Config {
	return Config{
		HeartbeatInterval: 10 * time.Second,
		MissedHeartbeats:  3,
		OpenTimeout:       15 * time.Second,
		HelloTimeout:      10 * time.Second,
	}
}

// Validate reports every problem with c.
func (c *Config) Validate() error {
	var errs []error
	if c.HeartbeatInterval <= 0 {
		errs = append(errs, errors.New("heartbeat interval must be positive"))
	}
	if c.MissedHeartbeats < 1 {
		errs = append(errs, errors.New("missed heartbeats must be at least 1"))
	}
	if c.OpenTimeout <= 0 || c.HelloTimeout <= 0 {
		errs = append(errs, errors.New("open and hello timeouts must be positive"))
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("no registry"))
	}
	if c.ClientCAs == nil {
		errs = append(errs, errors.New("no client CA pool (ClientCAs) to verify connector certificates with"))
	}
	return errors.Join(errs...)
}

// SessionEnd describes how a session ended.
type SessionEnd struct {
	SessionID   string
	ConnectorID string
	Target      string // empty in connector reports
	By          string // "control_plane" or "connector"
	Reason      string // a protocol.Reason value
	Detail      string
	BytesUp     int64 // towards the target
	BytesDown   int64 // from the target
}

// Broker accepts connector tunnels and brokers sessions through them. It
// is safe for concurrent use.
type Broker struct {
	cfg  Config
	log  *slog.Logger
	rand io.Reader

	mu        sync.Mutex
	tunnels   map[string]*tunnel // connector ID → its current tunnel
	seen      map[string]ConnectorState
	uploading map[string]bool // connector ID + "/" + stream type → an upload is under way
	closed    bool
}

// New returns a Broker; see Config.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	if cfg.MaxSupportBundle <= 0 {
		cfg.MaxSupportBundle = protocol.MaxSupportBundle
	}
	if cfg.StreamIdleTimeout <= 0 {
		cfg.StreamIdleTimeout = 60 * time.Second
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, rand: cfg.Rand, tunnels: map[string]*tunnel{}, seen: map[string]ConnectorState{}, uploading: map[string]bool{}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.rand == nil {
		b.rand = rand.Reader
	}
	return b, nil
}

func (b *Broker) now() time.Time {
	if b.cfg.Now != nil {
		return b.cfg.Now()
	}
	return time.Now()
}

func (b *Broker) newID() string {
	var buf [12]byte
	if _, err := io.ReadFull(b.rand, buf[:]); err != nil {
		panic(fmt.Sprintf("broker: reading randomness: %v", err))
	}
	return hex.EncodeToString(buf[:])
}

// ConnectorState is the broker's view of one connector that has connected
// since the broker started.
type ConnectorState struct {
	ID             string
	Status         string // StatusOnline, StatusDraining, StatusOffline
	Reason         string
	LastHeartbeat  time.Time
	Version        string
	ActiveSessions int // sessions through this broker in flight
	CertNotAfter   time.Time
	Since          time.Time
	// ClockOffset is the connector's last estimate of the control plane's
	// clock minus its own; nil before it reported one.
	ClockOffset *time.Duration
}

// Connectors returns the state of every connector seen, sorted by ID.
func (b *Broker) Connectors() []ConnectorState {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]ConnectorState, 0, len(b.seen))
	for id, s := range b.seen {
		if t := b.tunnels[id]; t != nil {
			s.ActiveSessions = t.activeSessions()
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Connector returns the state of one connector; ok is false when it has
// not connected since the broker started.
func (b *Broker) Connector(id string) (ConnectorState, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.seen[id]
	if t := b.tunnels[id]; t != nil {
		s.ActiveSessions = t.activeSessions()
	}
	return s, ok
}

// record updates the broker's view and the registry.
func (b *Broker) record(u StatusUpdate) {
	b.mu.Lock()
	s := b.seen[u.ConnectorID]
	if s.Status != u.Status {
		s.Since = b.now()
	}
	s.ID, s.Status, s.Reason = u.ConnectorID, u.Status, u.Reason
	if !u.LastHeartbeat.IsZero() {
		s.LastHeartbeat = u.LastHeartbeat
	}
	if u.Version != "" {
		s.Version = u.Version
	}
	if !u.CertNotAfter.IsZero() {
		s.CertNotAfter = u.CertNotAfter
	}
	if u.ClockOffset != nil {
		s.ClockOffset = u.ClockOffset
	}
	b.seen[u.ConnectorID] = s
	b.mu.Unlock()
	b.cfg.Registry.Update(u)
}

// SendOffer sends an update offer to connector id now, if it is online;
// it reports whether it did. (A standing offer also goes out after every
// hello, through Config.OfferFor.)
func (b *Broker) SendOffer(id string, o *protocol.UpdateOffer) bool {
	b.mu.Lock()
	t := b.tunnels[id]
	b.mu.Unlock()
	if t == nil {
		return false
	}
	if err := t.send(protocol.TunnelMessage{Type: protocol.MsgUpdateOffer, Offer: o}); err != nil {
		b.log.Warn("sending update offer", "connector", id, "err", err)
		return false
	}
	b.log.Info("update offered", "connector", id, "version", o.Version, "offer", o.ID)
	return true
}

// Serve accepts TLS connections on ln (a tls.NewListener whose config
// offers TunnelALPN) and serves the tunnel ones until ln closes; other
// connections are closed. The lab serves its HTTPS API on the same listener
// instead and calls ServeConn itself.
func (b *Broker) Serve(ctx context.Context, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accepting tunnels: %w", err)
		}
		tc, ok := c.(*tls.Conn)
		if !ok {
			c.Close()
			continue
		}
		go func() {
			if err := b.ServeConn(ctx, tc); err != nil {
				b.log.Debug("tunnel ended", "remote", tc.RemoteAddr(), "err", err)
			}
		}()
	}
}

// Disconnect ends connectorID's tunnel now, if it has one: it goes
// Offline with reason and its sessions end with connector_offline. The
// connector reconnects and is authorised again, so after a revocation it
// is refused then. It reports whether there was a tunnel.
func (b *Broker) Disconnect(connectorID, reason string) bool {
	b.mu.Lock()
	t := b.tunnels[connectorID]
	b.mu.Unlock()
	if t == nil {
		return false
	}
	t.offline(reason)
	return true
}

// Close ends every tunnel (their sessions end with connector_offline) and
// refuses new ones.
func (b *Broker) Close() error {
	b.mu.Lock()
	b.closed = true
	ts := make([]*tunnel, 0, len(b.tunnels))
	for _, t := range b.tunnels {
		ts = append(ts, t)
	}
	b.mu.Unlock()
	for _, t := range ts {
		t.offline("control plane shutting down")
	}
	return nil
}
