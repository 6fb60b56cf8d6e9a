package tunnel_test

import (
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/transport"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// fakeControlPlane speaks the control plane's side of the tunnel by hand,
// on loopback with a throwaway PKI: it accepts the connector's TLS and
// yamux, answers its hello, then hands the tunnel to the test (which may
// send what no real control plane would).
type fakeControlPlane struct {
	Addr    string
	PKI     *brokertest.PKI
	Tunnels atomic.Int32 // tunnels accepted (hello answered)
}

func newFakeControlPlane(t testing.TB, onTunnel func(mux *yamux.Session, ctl *yamux.Stream)) *fakeControlPlane {
	t.Helper()
	pki, err := brokertest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ServerCert()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{broker.TunnelALPN}, MinVersion: tls.VersionTLS13, ClientAuth: tls.RequestClientCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &fakeControlPlane{Addr: ln.Addr().String(), PKI: pki}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				mux, err := transport.Server(c, nil)
				if err != nil {
					return
				}
				defer mux.Close()
				ctl, err := mux.AcceptStream()
				if err != nil {
					return
				}
				var hello protocol.TunnelMessage
				if err := protocol.ReadTunnelFrame(ctl, &hello); err != nil {
					return
				}
				protocol.WriteTunnelFrame(ctl, &protocol.TunnelMessage{Type: protocol.MsgHelloAck,
					HelloAck: &protocol.TunnelHelloAck{ConnectorID: "c1", HeartbeatInterval: 10 * time.Second, ServerTime: time.Now()}})
				f.Tunnels.Add(1)
				onTunnel(mux, ctl)
			}()
		}
	}()
	return f
}

// client starts a tunnel client for connector c1 against f.
func (f *fakeControlPlane) client(t testing.TB, edit func(*tunnel.Config)) *tunnel.Client {
	t.Helper()
	cert, err := f.PKI.ClientCert("c1", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tunnel.DefaultConfig()
	cfg.Address = f.Addr
	cfg.RootCAs = f.PKI.Pool
	cfg.Certificate = func() (*tls.Certificate, error) { return &cert, nil }
	cfg.Logger = brokertest.Logger()
	cfg.DialTarget = func(context.Context, string, string) (net.Conn, error) {
		t.Error("the connector dialled a target")
		return nil, net.ErrClosed
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := tunnel.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}
