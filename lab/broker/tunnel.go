package broker

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/transport"
)

// tunnel is one connector's tunnel.
type tunnel struct {
	b    *Broker
	id   string
	leaf *x509.Certificate // the client certificate the tunnel was opened with
	conn *tls.Conn
	mux  *yamux.Session
	ctl  *yamux.Stream
	wmu  sync.Mutex

	interval time.Duration
	deadline *time.Timer // reset by every heartbeat; fires offline

	mu       sync.Mutex
	draining bool
	ended    bool
	sessions map[string]*Session
	done     chan struct{} // closed once offline finished
	once     sync.Once
}

func (t *tunnel) activeSessions() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions)
}

func (t *tunnel) send(m protocol.TunnelMessage) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.ctl.SetWriteDeadline(time.Now().Add(transport.WriteTimeout))
	defer t.ctl.SetWriteDeadline(time.Time{})
	return protocol.WriteTunnelFrame(t.ctl, &m)
}

// ServeConn serves one tunnel on conn, a server-side TLS connection whose
// client negotiated TunnelALPN; the TLS config requests the client
// certificate without verifying it (tls.RequestClientCert): the broker
// verifies it against Config.ClientCAs and answers the hello with a typed
// refusal. ServeConn completes the handshake if needed, checks the
// identity, answers the hello and serves the tunnel until it ends; it
// returns why it ended and always closes conn. Safe to call from
// http.Server.TLSNextProto.
func (b *Broker) ServeConn(ctx context.Context, conn *tls.Conn) error {
	defer conn.Close()
	hctx, cancel := context.WithTimeout(ctx, b.cfg.HelloTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("tunnel TLS handshake: %w", err)
	}
	conn.SetDeadline(time.Time{}) // an http.Server may have set one
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != TunnelALPN {
		return fmt.Errorf("connection negotiated ALPN %q, not the tunnel", cs.NegotiatedProtocol)
	}
	mux, err := transport.Server(conn, transport.Under(conn)) // see transport.BatchListener
	if err != nil {
		return fmt.Errorf("starting yamux: %w", err)
	}
	defer mux.Close()
	ctl, err := mux.AcceptStreamWithContext(hctx)
	if err != nil {
		return fmt.Errorf("waiting for the control stream: %w", err)
	}
	t := &tunnel{b: b, conn: conn, mux: mux, ctl: ctl, interval: b.cfg.HeartbeatInterval,
		sessions: map[string]*Session{}, done: make(chan struct{})}

	ctl.SetReadDeadline(time.Now().Add(b.cfg.HelloTimeout))
	var m protocol.TunnelMessage
	if err := protocol.ReadTunnelFrame(ctl, &m); err != nil {
		return fmt.Errorf("reading hello: %w", err)
	}
	ctl.SetReadDeadline(time.Time{})
	id, terr := b.authorize(ctx, cs, &m)
	if terr != nil {
		t.send(protocol.TunnelMessage{Type: protocol.MsgHelloAck, Error: terr})
		ctl.Close()
		b.log.Warn("tunnel refused", "remote", conn.RemoteAddr(), "connector", id, "code", terr.Code, "reason", terr.Message)
		// Let the refusal reach the connector before the connection closes.
		select {
		case <-mux.CloseChan():
		case <-time.After(time.Second):
		}
		return fmt.Errorf("tunnel refused: %s", terr.Message)
	}
	t.id, t.leaf = id, cs.PeerCertificates[0]
	if err := t.send(protocol.TunnelMessage{Type: protocol.MsgHelloAck, HelloAck: &protocol.TunnelHelloAck{
		ConnectorID: id, HeartbeatInterval: t.interval, ServerTime: b.now().UTC(), SupportRecipient: b.cfg.SupportRecipient,
	}}); err != nil {
		return fmt.Errorf("answering hello: %w", err)
	}

	t.deadline = time.AfterFunc(t.offlineAfter(), func() {
		t.offline(fmt.Sprintf("%d heartbeats missed", b.cfg.MissedHeartbeats))
	})
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		t.deadline.Stop()
		return errors.New("broker closed")
	}
	old := b.tunnels[id]
	b.tunnels[id] = t
	b.mu.Unlock()
	if old != nil {
		old.offline("replaced by a new tunnel from the same connector")
	}
	hb := m.Hello.Heartbeat
	now := b.now()
	b.record(StatusUpdate{ConnectorID: id, Status: StatusOnline, LastHeartbeat: now, Version: m.Hello.Version,
		ActiveSessions: hb.ActiveSessions, CertNotAfter: hb.CertNotAfter, RemoteAddr: conn.RemoteAddr().String(),
		ImageVersion: hb.ImageVersion, Update: hb.Update, ClockOffset: hb.ClockOffset})
	b.log.Info("connector online", "connector", id, "remote", conn.RemoteAddr(), "version", m.Hello.Version, "image", hb.ImageVersion)
	if b.cfg.OfferFor != nil {
		if o := b.cfg.OfferFor(id); o != nil {
			if err := t.send(protocol.TunnelMessage{Type: protocol.MsgUpdateOffer, Offer: o}); err != nil {
				b.log.Warn("sending the standing update offer", "connector", id, "err", err)
			}
		}
	}

	go t.acceptStreams(ctx)
	go func() {
		select {
		case <-ctx.Done():
			t.offline("control plane shutting down")
		case <-t.done:
		}
	}()
	err = t.readControl(ctx)
	t.offline("tunnel closed")
	<-t.done
	return err
}

// shrinkIdle gives back the receive buffers of sessions that moved no data
// for a heartbeat interval: yamux keeps a stream's buffer at its
// high-water mark, hundreds of KiB after a burst, for every session a
// control plane holds open.
func (t *tunnel) shrinkIdle() {
	cutoff := time.Now().Add(-t.interval).UnixNano()
	t.mu.Lock()
	ss := make([]*Session, 0, len(t.sessions))
	for _, s := range t.sessions {
		ss = append(ss, s)
	}
	t.mu.Unlock()
	for _, s := range ss {
		if s.last.Load() < cutoff {
			s.st.Shrink()
		}
	}
}

func (t *tunnel) offlineAfter() time.Duration {
	return time.Duration(t.b.cfg.MissedHeartbeats) * t.interval
}

// authorize checks the hello and the certificate; it returns the connector
// ID, or a refusal for the connector.
func (b *Broker) authorize(ctx context.Context, cs tls.ConnectionState, m *protocol.TunnelMessage) (string, *protocol.TunnelError) {
	if m.Type != protocol.MsgHello || m.Hello == nil {
		return "", &protocol.TunnelError{Code: protocol.TunnelBadHello, Message: fmt.Sprintf("expected hello, got %q", m.Type)}
	}
	if m.Hello.ProtocolVersion != protocol.TunnelVersion {
		return "", &protocol.TunnelError{Code: protocol.TunnelBadHello,
			Message: fmt.Sprintf("tunnel protocol version %d not supported (want %d)", m.Hello.ProtocolVersion, protocol.TunnelVersion)}
	}
	if cs.Version != tls.VersionTLS13 {
		return "", &protocol.TunnelError{Code: protocol.TunnelBadHello, Message: "the tunnel requires TLS 1.3"}
	}
	if len(cs.PeerCertificates) == 0 {
		return "", &protocol.TunnelError{Code: protocol.TunnelNoCert,
			Message: "no client certificate reached the control plane (a TLS-inspecting proxy in between cannot pass one through)"}
	}
	leaf := cs.PeerCertificates[0]
	fp := protocol.CertFingerprint(leaf.Raw)
	refuse := func(code, msg string) *protocol.TunnelError {
		return &protocol.TunnelError{Code: code, Message: msg, CertSHA256: fp}
	}
	if terr := b.verifyClient(cs.PeerCertificates); terr != nil {
		terr.CertSHA256 = fp
		return "", terr
	}
	id, err := protocol.ConnectorIDFromURIs(leaf.URIs)
	if err != nil {
		return "", refuse(protocol.TunnelUnknown, err.Error())
	}
	if err := b.cfg.Registry.Authorize(ctx, id, leaf); err != nil {
		switch {
		case errors.Is(err, ErrRevoked):
			return id, refuse(protocol.TunnelRevoked, "this connector's certificate was revoked; recover it with a recovery token")
		case errors.Is(err, ErrUnknownConnector):
			return id, refuse(protocol.TunnelUnknown, "this control plane does not know connector "+id)
		}
		return id, &protocol.TunnelError{Code: protocol.TunnelUnavailable, Message: "cannot check the connector now: " + err.Error()}
	}
	return id, nil
}

// verifyClient checks the client certificate chain against ClientCAs at
// the broker's clock. The TLS layer only requests the certificate
// (tls.RequestClientCert), so a refusal is told to the connector here, at
// the application level, where a TLS-inspecting proxy cannot be mistaken
// for the control plane.
func (b *Broker) verifyClient(certs []*x509.Certificate) *protocol.TunnelError {
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	now := b.now()
	_, err := leaf.Verify(x509.VerifyOptions{Roots: b.cfg.ClientCAs, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && now.Before(invalid.Cert.NotBefore):
		return &protocol.TunnelError{Code: protocol.TunnelNotYetValid,
			Message: fmt.Sprintf("certificate %q is not valid before %s by the control plane's clock (%s)", invalid.Cert.Subject.CommonName,
				invalid.Cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return &protocol.TunnelError{Code: protocol.TunnelExpired,
			Message: fmt.Sprintf("certificate %q expired at %s by the control plane's clock (%s)", invalid.Cert.Subject.CommonName,
				invalid.Cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	return &protocol.TunnelError{Code: protocol.TunnelUnknown, Message: "client certificate was not issued by this control plane: " + err.Error()}
}

// SameKey reports whether two public keys are the same key.
func SameKey(a, b any) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// readControl handles the connector's control messages until the stream
// or the tunnel ends.
func (t *tunnel) readControl(ctx context.Context) error {
	b := t.b
	for {
		var m protocol.TunnelMessage
		if err := protocol.ReadTunnelFrame(t.ctl, &m); err != nil {
			return fmt.Errorf("control stream: %w", err)
		}
		switch m.Type {
		case protocol.MsgHeartbeat, protocol.MsgDraining:
			hb := m.Heartbeat
			if m.Type == protocol.MsgDraining {
				hb = m.Draining
				t.mu.Lock()
				t.draining = true
				t.mu.Unlock()
			}
			if hb == nil {
				continue
			}
			t.deadline.Reset(t.offlineAfter())
			status := StatusOnline
			t.mu.Lock()
			if t.draining {
				status = StatusDraining
			}
			t.mu.Unlock()
			b.record(StatusUpdate{ConnectorID: t.id, Status: status, LastHeartbeat: b.now(), Version: hb.Version,
				ActiveSessions: hb.ActiveSessions, CertNotAfter: hb.CertNotAfter, RemoteAddr: t.conn.RemoteAddr().String(),
				ImageVersion: hb.ImageVersion, Update: hb.Update, ClockOffset: hb.ClockOffset})
			t.shrinkIdle()
			if m.Type == protocol.MsgHeartbeat {
				err := t.send(protocol.TunnelMessage{Type: protocol.MsgHeartbeatAck,
					Ack: &protocol.TunnelAck{Seq: hb.Seq, HeartbeatInterval: t.interval, ServerTime: b.now().UTC()}})
				if err != nil {
					return fmt.Errorf("acknowledging heartbeat: %w", err)
				}
			}
		case protocol.MsgRenewRequest:
			if m.Renew != nil {
				go t.renew(ctx, m.Renew.CSR)
			}
		case protocol.MsgSessionEnd:
			e := m.SessionEnd
			if e == nil {
				continue
			}
			if b.cfg.OnSessionEnd != nil {
				b.cfg.OnSessionEnd(SessionEnd{SessionID: e.SessionID, ConnectorID: t.id, By: "connector",
					Reason: string(e.Reason), Detail: e.Detail, BytesUp: e.BytesUp, BytesDown: e.BytesDown})
			}
			t.connectorReport(e)
		default:
			b.log.Debug("ignoring control message", "connector", t.id, "type", m.Type)
		}
	}
}

// renew signs a renewal through the Authority and answers.
func (t *tunnel) renew(ctx context.Context, der []byte) {
	b := t.b
	resp := &protocol.RenewResponse{}
	fail := func(msg string) {
		resp.Error = &protocol.TunnelError{Code: protocol.TunnelRenewFailed, Message: msg}
	}
	csr, err := x509.ParseCertificateRequest(der)
	switch {
	case b.cfg.Authority == nil:
		fail("this control plane does not renew certificates over the tunnel")
	case err != nil:
		fail("certificate request does not parse: " + err.Error())
	case csr.CheckSignature() != nil:
		fail("certificate request signature is invalid")
	case !SameKey(csr.PublicKey, t.leaf.PublicKey):
		fail("a renewal must be for the key of the certificate in use; a new key needs a recovery token")
	default:
		chain, err := b.cfg.Authority.Renew(ctx, t.id, t.leaf, csr)
		if err != nil {
			fail(err.Error())
		} else {
			resp.Chain = chain
			b.log.Info("certificate renewed", "connector", t.id)
		}
	}
	if err := t.send(protocol.TunnelMessage{Type: protocol.MsgRenewResponse, Renewed: resp}); err != nil {
		b.log.Warn("sending renewal answer", "connector", t.id, "err", err)
	}
}

// offline takes the tunnel out of routing, closes it and ends its
// sessions with reason connector_offline, except those whose end the
// connector reported before (they keep the reported reason). When the
// connector closes the tunnel, ServeConn calls it only after the control
// stream's last message was handled, so every report sent before the
// close counts. Safe to call more than once.
func (t *tunnel) offline(reason string) {
	t.once.Do(func() {
		b := t.b
		t.mu.Lock()
		t.ended = true
		ss := make([]*Session, 0, len(t.sessions))
		for _, s := range t.sessions {
			ss = append(ss, s)
		}
		t.mu.Unlock()
		if t.deadline != nil {
			t.deadline.Stop()
		}
		// Close the mux first: stream closes then return at once instead
		// of waiting for a connection that may be blocked.
		t.mux.Close()
		for _, s := range ss {
			s.endAtTunnelLoss(reason)
		}
		current := false
		b.mu.Lock()
		if b.tunnels[t.id] == t {
			delete(b.tunnels, t.id)
			current = true
		}
		b.mu.Unlock()
		if current && t.id != "" {
			b.record(StatusUpdate{ConnectorID: t.id, Status: StatusOffline, Reason: reason})
			b.log.Warn("connector offline", "connector", t.id, "reason", reason, "sessions_ended", len(ss))
		}
		close(t.done)
	})
}
