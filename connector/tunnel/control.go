package tunnel

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tlsreason"
	"github.com/vaultpam/appliance/connector/transport"
)

// conn is one tunnel connection: the yamux session and its control stream.
type conn struct {
	c   *Client
	mux *yamux.Session
	raw *recordConn
	ctl *yamux.Stream

	wmu  sync.Mutex // serialises control-stream writes
	acks chan ackMsg

	closeOnce sync.Once
	done      chan struct{} // closed by close: serve returns

	mu          sync.Mutex
	renewing    bool
	connectorID string
}

type ackMsg struct {
	seq      uint64
	interval time.Duration
	server   time.Time // the control plane's clock; zero from an older one
}

// send writes one control message, bounded by the write timeout.
func (cn *conn) send(m protocol.TunnelMessage) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	cn.ctl.SetWriteDeadline(time.Now().Add(transport.WriteTimeout))
	defer cn.ctl.SetWriteDeadline(time.Time{})
	return protocol.WriteTunnelFrame(cn.ctl, &m)
}

func (cn *conn) close() {
	cn.closeOnce.Do(func() { close(cn.done) })
	cn.mux.Close()
}

// heartbeat builds the current heartbeat.
func (cn *conn) heartbeat(seq uint64) protocol.TunnelHeartbeat {
	c := cn.c
	now := state.Online
	if c.isDraining() {
		now = state.Draining
	}
	hb := protocol.TunnelHeartbeat{
		Seq:            seq,
		State:          now.String(),
		Version:        c.cfg.Version,
		ActiveSessions: c.activeSessions(),
		CertNotAfter:   time.Unix(0, c.certNotAfter.Load()).UTC(),
		SentAt:         c.now().UTC(),
	}
	if c.cfg.Image != nil {
		hb.ImageVersion, hb.Update = c.cfg.Image()
	}
	if off, ok := c.clockOffset(); ok {
		hb.ClockOffset = &off
	}
	return hb
}

// hello opens the control stream and waits for the control plane's answer.
func (cn *conn) hello(ctx context.Context) (*protocol.TunnelHelloAck, error) {
	c := cn.c
	fail := func(err error) error {
		// Give yamux's reader a moment to record why the connection died.
		select {
		case <-cn.mux.CloseChan():
		case <-time.After(200 * time.Millisecond):
		}
		if rerr := cn.raw.err(); rerr != nil {
			if cerr := c.explain(rerr); cerr != rerr {
				return cerr
			}
		}
		return err
	}
	ctl, err := cn.mux.OpenStream()
	if err != nil {
		return nil, fail(fmt.Errorf("opening control stream: %w", err))
	}
	cn.ctl = ctl
	sentAt := time.Now()
	err = cn.send(protocol.TunnelMessage{Type: protocol.MsgHello, Hello: &protocol.TunnelHello{
		ProtocolVersion: protocol.TunnelVersion,
		Version:         c.cfg.Version,
		Name:            c.cfg.Name,
		Heartbeat:       cn.heartbeat(0),
	}})
	if err != nil {
		return nil, fail(fmt.Errorf("sending hello: %w", err))
	}
	ctl.SetReadDeadline(time.Now().Add(c.cfg.DialTimeout))
	var m protocol.TunnelMessage
	err = protocol.ReadTunnelFrame(ctl, &m)
	ctl.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, fail(fmt.Errorf("waiting for the control plane's hello: %w", err))
	}
	if m.Type != protocol.MsgHelloAck {
		return nil, fmt.Errorf("control plane answered hello with %q", m.Type)
	}
	if m.Error != nil {
		return nil, c.refused(m.Error)
	}
	if m.HelloAck == nil {
		return nil, errors.New("control plane sent an empty hello answer")
	}
	cn.connectorID = m.HelloAck.ConnectorID
	if !m.HelloAck.ServerTime.IsZero() {
		c.setClock(c.estimateOffset(m.HelloAck.ServerTime, time.Since(sentAt)))
	}
	return m.HelloAck, nil
}

// refused turns the control plane's refusal of the hello into an error:
// permanent when it refuses this connector's own certificate (the
// fingerprint it judged is ours), transient otherwise.
func (c *Client) refused(e *protocol.TunnelError) error {
	mine := c.certSHA256.Load()
	switch {
	case protocol.TunnelPermanent(e.Code) && (e.CertSHA256 == "" || e.CertSHA256 == mine):
		return &permanentError{fmt.Errorf("control plane refused this connector's certificate: %s (%s)", e.Message, e.Code)}
	case protocol.TunnelPermanent(e.Code):
		return &tlsreason.Error{Explanation: tlsreason.Explanation{
			Reason: fmt.Sprintf("the control plane refused a client certificate that is not this connector's (%s: %s); %s", e.Code, e.Message, tlsreason.ProxyHint),
			Hint:   "something between the connector and the control plane presents its own certificate: exempt the control plane's address from TLS inspection",
		}}
	case e.Code == protocol.TunnelNoCert:
		return &tlsreason.Error{Explanation: tlsreason.Explanation{
			Reason: "the control plane received no client certificate; " + tlsreason.ProxyHint,
			Hint:   "something between the connector and the control plane terminates TLS: exempt the control plane's address from TLS inspection",
		}}
	case e.Code == protocol.TunnelNotYetValid:
		return &tlsreason.Error{Explanation: tlsreason.Explanation{
			Reason: fmt.Sprintf("the control plane says this connector's certificate is not valid yet (%s); its clock or this machine's is off", e.Message),
			Hint:   "check the clock (NTP) here; the connector retries by itself",
		}}
	}
	return fmt.Errorf("control plane refused the tunnel: %s (%s)", e.Message, e.Code)
}

// serve runs the tunnel: heartbeats, the control-stream reader and the
// session acceptor, until the tunnel closes or ctx ends.
func (cn *conn) serve(ctx context.Context, interval time.Duration) error {
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- cn.readControl() }()
	go func() { defer wg.Done(); errs <- cn.accept(ctx) }()
	err := cn.heartbeats(ctx, interval, errs)
	cn.close()
	wg.Wait()
	return err
}

// heartbeats sends a heartbeat every interval and closes the tunnel when
// no acknowledgement came for 3 intervals (the control plane has marked us
// Offline by then; reconnecting is the way back).
func (cn *conn) heartbeats(ctx context.Context, interval time.Duration, errs <-chan error) error {
	c := cn.c
	var seq uint64
	type sentHB struct {
		at     time.Time // monotonic
		missed bool      // counted as missed already
	}
	sent := map[uint64]*sentHB{}
	lastAck := time.Now()
	t := time.NewTimer(interval)
	defer t.Stop()
	// A first RTT at once, from a yamux ping: the first heartbeat answer
	// is an interval away, and the health screen shows "-" until then.
	go func() {
		rtt, err := cn.mux.Ping()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.cur == cn && c.status.RTT == 0 { // a heartbeat's answer is newer
			c.status.RTT = rtt
		}
		c.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cn.done:
			return errors.New("tunnel closed")
		case err := <-errs:
			return err
		case a := <-cn.acks:
			lastAck = time.Now()
			if a.interval > 0 && a.interval != interval {
				interval = a.interval
			}
			var rtt time.Duration
			if hb, ok := sent[a.seq]; ok {
				rtt = time.Since(hb.at)
				for s := range sent {
					if s <= a.seq {
						delete(sent, s)
					}
				}
				c.counters.observeRTT(rtt)
				if !a.server.IsZero() {
					c.setClock(c.estimateOffset(a.server, rtt))
				}
			}
			now := c.now()
			c.mu.Lock()
			c.status.LastHeartbeat = now
			c.status.HeartbeatInterval = interval
			if rtt > 0 {
				c.status.RTT = rtt
			}
			c.mu.Unlock()
		case <-t.C:
			for _, hb := range sent {
				if !hb.missed && time.Since(hb.at) >= interval {
					hb.missed = true
					c.counters.hbMissed.Add(1)
				}
			}
			if time.Since(lastAck) > 3*interval {
				return fmt.Errorf("no heartbeat answer from the control plane for %v", time.Since(lastAck).Round(time.Second))
			}
			seq++
			sent[seq] = &sentHB{at: time.Now()}
			hb := cn.heartbeat(seq)
			if err := cn.send(protocol.TunnelMessage{Type: protocol.MsgHeartbeat, Heartbeat: &hb}); err != nil {
				return fmt.Errorf("sending heartbeat: %w", err)
			}
			c.counters.hbSent.Add(1)
			cn.maybeRenew()
			c.shrinkIdle(interval)
			t.Reset(interval)
		}
	}
}

// readControl reads the control plane's messages until the stream ends.
func (cn *conn) readControl() error {
	for {
		var m protocol.TunnelMessage
		if err := protocol.ReadTunnelFrame(cn.ctl, &m); err != nil {
			return fmt.Errorf("control stream: %w", err)
		}
		switch m.Type {
		case protocol.MsgHeartbeatAck:
			if m.Ack != nil {
				select {
				case cn.acks <- ackMsg{seq: m.Ack.Seq, interval: m.Ack.HeartbeatInterval, server: m.Ack.ServerTime}:
				case <-cn.done:
				}
			}
		case protocol.MsgRenewResponse:
			cn.renewed(m.Renewed)
		case protocol.MsgUpdateOffer:
			if m.Offer != nil && cn.c.cfg.OnUpdateOffer != nil {
				go cn.c.cfg.OnUpdateOffer(*m.Offer)
			}
		case protocol.MsgSessionAbort:
			if m.Abort != nil {
				cn.c.abort(m.Abort.SessionID, m.Abort.Reason)
			}
		default:
			cn.c.log.Debug("ignoring control message", "type", m.Type)
		}
	}
}

// goAway stops new sessions on this tunnel and tells the control plane.
func (cn *conn) goAway() {
	cn.mux.GoAway()
	hb := cn.heartbeat(0)
	hb.State = state.Draining.String()
	if err := cn.send(protocol.TunnelMessage{Type: protocol.MsgDraining, Draining: &hb}); err != nil {
		cn.c.log.Warn("telling the control plane we drain", "err", err)
	}
}

// maybeRenew asks for a new certificate once RenewAfter of the current
// one's lifetime has passed, at most one request at a time.
func (cn *conn) maybeRenew() {
	c := cn.c
	if c.cfg.Renewed == nil {
		return
	}
	nb, na := time.Unix(0, c.certNotBefore.Load()), time.Unix(0, c.certNotAfter.Load())
	due := nb.Add(time.Duration(float64(na.Sub(nb)) * c.cfg.RenewAfter))
	if c.now().Before(due) {
		return
	}
	cn.mu.Lock()
	if cn.renewing {
		cn.mu.Unlock()
		return
	}
	cn.renewing = true
	cn.mu.Unlock()
	csr, err := cn.csr()
	if err == nil {
		err = cn.send(protocol.TunnelMessage{Type: protocol.MsgRenewRequest, Renew: &protocol.RenewRequest{CSR: csr}})
	}
	if err != nil {
		c.log.Warn("requesting certificate renewal", "err", err)
		cn.mu.Lock()
		cn.renewing = false
		cn.mu.Unlock()
	}
}

// csr makes a certificate request signed by the current key.
func (cn *conn) csr() ([]byte, error) {
	cert, err := cn.c.cfg.Certificate()
	if err != nil {
		return nil, fmt.Errorf("loading certificate for renewal: %w", err)
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("client key cannot sign a renewal request")
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn.connectorID}}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, signer)
	if err != nil {
		return nil, fmt.Errorf("creating renewal request: %w", err)
	}
	return der, nil
}

// renewed hands a renewal answer to the daemon.
func (cn *conn) renewed(r *protocol.RenewResponse) {
	c := cn.c
	defer func() {
		cn.mu.Lock()
		cn.renewing = false
		cn.mu.Unlock()
	}()
	if r == nil || r.Error != nil || len(r.Chain) == 0 {
		msg := "empty answer"
		if r != nil && r.Error != nil {
			msg = r.Error.Message
		}
		c.log.Warn("certificate renewal refused; retrying at the next heartbeat", "reason", msg)
		return
	}
	leaf, err := x509.ParseCertificate(r.Chain[0])
	if err != nil {
		c.log.Warn("renewed certificate does not parse", "err", err)
		return
	}
	if err := c.cfg.Renewed(r.Chain); err != nil {
		c.log.Warn("storing renewed certificate", "err", err)
		return
	}
	c.certNotBefore.Store(leaf.NotBefore.UnixNano())
	c.certNotAfter.Store(leaf.NotAfter.UnixNano())
	c.log.Info("certificate renewed", "not_after", leaf.NotAfter.UTC())
}
