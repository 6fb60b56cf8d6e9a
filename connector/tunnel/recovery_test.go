package tunnel_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// countDials wraps the client's dialer and counts connection attempts.
func countDials(n *atomic.Int32) func(*tunnel.Config) {
	return func(c *tunnel.Config) {
		c.DialControlPlane = func(ctx context.Context, network, addr string) (net.Conn, error) {
			n.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
	}
}

// expectNeedsRecovery checks that Run stopped with ErrNeedsRecovery after
// one attempt and the state says so.
func expectNeedsRecovery(t *testing.T, h *brokertest.Harness, dials *atomic.Int32) {
	t.Helper()
	var err error
	select {
	case err = <-h.RunErr:
	case <-time.After(60 * time.Second):
		t.Fatal("Run kept retrying a permanent failure")
	}
	h.RunErr <- err // for cleanup
	if !errors.Is(err, tunnel.ErrNeedsRecovery) {
		t.Fatalf("Run = %v, want ErrNeedsRecovery", err)
	}
	st := h.Client.Status()
	if st.State != state.NeedsRecovery || st.Reason == "" {
		t.Errorf("Status = %v %q, want needs_recovery with a reason", st.State, st.Reason)
	}
	// One attempt normally; a TLS alert can be lost to a TCP reset when the
	// control plane closes while our hello is in flight, so that attempt
	// looks transient and one more is made. Never a loop.
	if dials != nil && (dials.Load() < 1 || dials.Load() > 3) {
		t.Errorf("connection attempts = %d, want 1 to 3 (no retry loop)", dials.Load())
	}
	t.Logf("needs_recovery: %s", st.Reason)
}

func TestRevokedNeedsRecovery(t *testing.T) {
	var dials atomic.Int32
	h := brokertest.NewHarness(t, brokertest.Options{NoRun: true, EditClient: countDials(&dials)})
	h.Registry.Revoke("c1")
	h.Run()
	expectNeedsRecovery(t, h, &dials)
}

func TestUnknownConnectorNeedsRecovery(t *testing.T) {
	var dials atomic.Int32
	h := brokertest.NewHarness(t, brokertest.Options{NoRun: true, EditClient: countDials(&dials)})
	h.Registry.Forget("c1")
	h.Run()
	expectNeedsRecovery(t, h, &dials)
}

// TestForeignClientCertNeedsRecovery: a certificate from another CA is
// rejected in the TLS handshake.
func TestForeignClientCertNeedsRecovery(t *testing.T) {
	var dials atomic.Int32
	h := brokertest.NewHarness(t, brokertest.Options{NoRun: true, EditClient: countDials(&dials)})
	other, err := brokertest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := other.ClientCert("c1", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.SetCert(cert)
	h.Run()
	expectNeedsRecovery(t, h, &dials)
}

// TestExpiredCertNeedsRecovery: the control plane, by its clock, finds
// the connector's certificate expired and says so in its hello_ack
// (cert_expired, with the fingerprint of the certificate it judged):
// that is a verdict on the connector's own identity.
func TestExpiredCertNeedsRecovery(t *testing.T) {
	var dials atomic.Int32
	h := brokertest.NewHarness(t, brokertest.Options{NoRun: true, EditClient: countDials(&dials)})
	cert, err := h.PKI.ClientCert("c1", time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.SetCert(cert)
	h.Run()
	expectNeedsRecovery(t, h, &dials)
	if st := h.Client.Status(); !strings.Contains(st.Reason, "cert_expired") {
		t.Errorf("reason %q does not say the control plane found the certificate expired", st.Reason)
	}
}

// TestLocalClockDoesNotJudgeOwnCert: by this machine's clock the client
// certificate has expired, the control plane's clock says it is fine. The
// connector asks instead of giving up, and goes Online.
func TestLocalClockDoesNotJudgeOwnCert(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{EditClient: func(c *tunnel.Config) {
		// Two hours ahead: the client certificate (one hour) has expired
		// here, the control plane's (a day) has not.
		c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	}})
	h.WaitOnline()
}

// TestRenewal: past half its lifetime the certificate is renewed over the
// tunnel for the same key and connector ID, handed to the daemon, and the
// heartbeats carry the new expiry.
func TestRenewal(t *testing.T) {
	renewed := make(chan [][]byte, 1)
	var h *brokertest.Harness
	h = brokertest.NewHarness(t, brokertest.Options{Interval: 300 * time.Millisecond, Authority: true,
		Cert: func(p *brokertest.PKI) (tls.Certificate, error) {
			return p.ClientCert("c1", time.Now().Add(-40*time.Minute), time.Hour)
		},
		EditClient: func(c *tunnel.Config) {
			c.Renewed = func(chain [][]byte) error {
				cert := h.Cert()
				cert.Certificate = chain
				cert.Leaf, _ = x509.ParseCertificate(chain[0])
				h.SetCert(cert)
				select {
				case renewed <- chain:
				default:
				}
				return nil
			}
		}})
	old := h.Cert()
	chain := <-renewed
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "vaultpam://connector/c1" {
		t.Errorf("renewed certificate URIs = %v, want vaultpam://connector/c1", leaf.URIs)
	}
	oldPub, _ := x509.MarshalPKIXPublicKey(old.Leaf.PublicKey)
	newPub, _ := x509.MarshalPKIXPublicKey(leaf.PublicKey)
	if !bytes.Equal(oldPub, newPub) {
		t.Error("renewed certificate is for a different key")
	}
	if !leaf.NotAfter.After(old.Leaf.NotAfter) {
		t.Errorf("renewed certificate ends %v, not after the old one's %v", leaf.NotAfter, old.Leaf.NotAfter)
	}
	brokertest.WaitFor(t, "heartbeat with the new expiry", func() bool {
		s, _ := h.Broker.Connector("c1")
		return s.CertNotAfter.Equal(leaf.NotAfter.UTC())
	})
}

// TestRevokeWhileOnline: the control plane revokes a connected connector
// and cuts its tunnel; the connector's reconnect is refused and it stops
// in needs_recovery.
func TestRevokeWhileOnline(t *testing.T) {
	var dials atomic.Int32
	h := brokertest.NewHarness(t, brokertest.Options{EditClient: countDials(&dials)})
	h.WaitOnline()
	h.Registry.Revoke("c1")
	if !h.Broker.Disconnect("c1", "certificate revoked") {
		t.Fatal("Disconnect found no tunnel for c1")
	}
	if h.Broker.Disconnect("c1", "again") {
		t.Error("second Disconnect found a tunnel")
	}
	var err error
	select {
	case err = <-h.RunErr:
	case <-time.After(60 * time.Second):
		t.Fatal("Run kept retrying after revocation")
	}
	h.RunErr <- err
	if !errors.Is(err, tunnel.ErrNeedsRecovery) {
		t.Fatalf("Run = %v, want ErrNeedsRecovery", err)
	}
	if n := dials.Load(); n < 2 || n > 4 {
		t.Errorf("connection attempts = %d, want the first plus 1 to 3 refused", n)
	}
}
