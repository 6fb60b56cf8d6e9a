package broker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/transport"
	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// TestRenewalOnlyForTheKeyInUse: over a real tunnel, the broker renews a
// certificate for the key the tunnel was opened with and refuses a CSR
// for any other key (renew_failed), whatever the CSR says.
func TestRenewalOnlyForTheKeyInUse(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{NoRun: true, Authority: true})
	cert := h.Cert()
	tc, err := tls.Dial("tcp", h.Server.Addr, &tls.Config{RootCAs: h.PKI.Pool, NextProtos: []string{broker.TunnelALPN}, MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	mux, err := transport.Client(tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	ctl, err := mux.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	ctl.SetDeadline(time.Now().Add(time.Minute))
	send := func(m protocol.TunnelMessage) {
		if err := protocol.WriteTunnelFrame(ctl, &m); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(typ string) protocol.TunnelMessage {
		for {
			var m protocol.TunnelMessage
			if err := protocol.ReadTunnelFrame(ctl, &m); err != nil {
				t.Fatalf("waiting for %s: %v", typ, err)
			}
			if m.Type == typ {
				return m
			}
		}
	}
	send(protocol.TunnelMessage{Type: protocol.MsgHello, Hello: &protocol.TunnelHello{ProtocolVersion: protocol.TunnelVersion, Version: "test"}})
	if ack := recv(protocol.MsgHelloAck); ack.Error != nil {
		t.Fatalf("hello refused: %+v", ack.Error)
	}
	renew := func(key *ecdsa.PrivateKey) *protocol.RenewResponse {
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			t.Fatal(err)
		}
		send(protocol.TunnelMessage{Type: protocol.MsgRenewRequest, Renew: &protocol.RenewRequest{CSR: csr}})
		return recv(protocol.MsgRenewResponse).Renewed
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if r := renew(other); r == nil || r.Error == nil || r.Error.Code != protocol.TunnelRenewFailed || len(r.Chain) != 0 {
		t.Errorf("renewal for another key = %+v, want renew_failed", r)
	}
	if r := renew(cert.PrivateKey.(*ecdsa.PrivateKey)); r == nil || r.Error != nil || len(r.Chain) == 0 {
		t.Errorf("renewal for the key in use = %+v, want a chain", r)
	}
}
