package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/lab/broker"
)

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func startWithTunnel(t *testing.T, cp *lab.TestServer, allowed []string) *run {
	t.Helper()
	tc := tunnel.DefaultConfig()
	tc.Address = cp.Addr().String()
	tc.RootCAs = cp.CAPool
	tc.AllowedTargets = allowed
	tc.Name, tc.Version = "dc1", "test"
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	return launch(t, Options{
		Config:   config.Config{ControlPlaneURL: cp.URL(), ConnectorName: "dc1", AllowedTargets: allowed, DrainTimeout: config.Duration(time.Minute)},
		Store:    &identity.Mem{},
		Mode:     durable,
		Enroller: &enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool, Name: "dc1"},
		Link:     TunnelLink(tc),
		Token:    tok,
	})
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo = %q, %v; want %q", buf, err, msg)
	}
}

// Enrol, come online through the real tunnel, carry a session, refuse a
// target outside allowed_targets with the reason reaching the caller, and
// drain on shutdown: no new sessions, the open one finishes.
func TestOnlineSessionsAndDrain(t *testing.T) {
	cp := lab.NewTest(t, lab.WithHeartbeat(time.Second)) // slow enough for a loaded CI machine
	echo := echoServer(t)
	r := startWithTunnel(t, cp, []string{echo})
	r.waitFor(t, state.Online)
	id := r.Status().ConnectorID

	cp.Authority.AddResource(lab.Resource{Name: "echo", Address: echo, Connector: id})
	cp.Authority.AddResource(lab.Resource{Name: "other", Address: "127.0.0.1:9", Connector: id})
	ctx := context.Background()
	s, err := cp.Lab.Connect(ctx, "echo")
	if err != nil {
		t.Fatalf("Connect(echo) = %v", err)
	}
	roundTrip(t, s, "hello through the tunnel")

	_, err = cp.Lab.Connect(ctx, "other")
	var be *broker.Error
	if !errors.As(err, &be) || be.Reason != protocol.ReasonNotAllowed {
		t.Fatalf("Connect(outside allowed_targets) = %v, want not_allowed", err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		st := r.Status()
		c, _ := cp.Authority.Connector(id)
		if st.ActiveSessions == 1 && !st.LastHeartbeat.IsZero() && c.Status == lab.StatusOnline && !c.LastHeartbeat.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the session and heartbeats: %+v / lab %+v", st, c)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// SIGTERM: draining, new sessions refused, the open one still works.
	r.cancel()
	r.waitFor(t, state.Draining)
	for {
		_, err = cp.Lab.Connect(ctx, "echo")
		if errors.As(err, &be) && be.Reason == protocol.ReasonDraining {
			break
		}
		if err == nil || time.Now().After(deadline) {
			t.Fatalf("Connect while draining = %v, want draining", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	roundTrip(t, s, "still here")
	s.CloseWrite()
	io.Copy(io.Discard, s)
	s.Close()
	select {
	case <-r.done:
		r.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop after its last session ended")
	}
}

// Revoking a live connector cuts its tunnel; the broker then refuses the
// certificate for good, the connector goes to needs_recovery (no retry
// loop), and a recovery token brings it back online with the same ID.
func TestRevokedWhileOnline(t *testing.T) {
	cp := lab.NewTest(t, lab.WithHeartbeat(time.Second)) // slow enough for a loaded CI machine
	r := startWithTunnel(t, cp, nil)
	r.waitFor(t, state.Online)
	id := r.Status().ConnectorID
	if err := cp.Authority.Revoke(id); err != nil {
		t.Fatal(err)
	}
	tr := r.waitFor(t, state.NeedsRecovery)
	if !strings.Contains(tr.Reason, "revoked") || r.Status().Hint == "" {
		t.Errorf("needs_recovery reason %q hint %q; want the revocation and a hint", tr.Reason, r.Status().Hint)
	}
	rec, err := cp.Authority.CreateRecoveryToken(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.submit(t, rec); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, state.Online)
	if got := r.Status().ConnectorID; got != id {
		t.Errorf("recovered as %s, want %s", got, id)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, _ := cp.Authority.Connector(id)
		if c.Status == lab.StatusOnline {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab status after recovery = %s, want online", c.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A short-lived certificate is renewed over the tunnel before half its
// lifetime: the new one is on disk with the same key, the tunnel stays up.
func TestCertificateRenewal(t *testing.T) {
	cp := lab.NewTest(t, lab.WithHeartbeat(500*time.Millisecond), lab.WithCertTTL(6*time.Second))
	dir := t.TempDir()
	tc := tunnel.DefaultConfig()
	tc.Address = cp.Addr().String()
	tc.RootCAs = cp.CAPool
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	store := &identity.Dir{Path: dir}
	r := launch(t, Options{
		Config: config.Config{ControlPlaneURL: cp.URL(), ConnectorName: "dc1"}, Store: store, Mode: durable,
		Enroller: &enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool}, Link: TunnelLink(tc), Token: tok,
	})
	r.waitFor(t, state.Online)
	first := r.Identity()

	deadline := time.Now().Add(time.Minute)
	for {
		got, err := store.Load()
		if err == nil && got.Leaf().SerialNumber.Cmp(first.Leaf().SerialNumber) != 0 {
			if !got.Key.Equal(first.Key) || got.ConnectorID != first.ConnectorID {
				t.Fatal("renewed identity has another key or connector ID")
			}
			if !got.Leaf().NotAfter.After(first.Leaf().NotAfter) {
				t.Errorf("renewed certificate does not last longer")
			}
			// The status follows right after the store.
			for st := r.Status(); !st.CertNotAfter.Equal(got.Leaf().NotAfter.UTC()); st = r.Status() {
				if time.Now().After(deadline) {
					t.Fatalf("status cert_not_after = %v, want %v", st.CertNotAfter, got.Leaf().NotAfter)
				}
				time.Sleep(10 * time.Millisecond)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate never renewed (last load err %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.State() != state.Online {
		t.Errorf("state after renewal = %s, want online", r.State())
	}
}

// Re-enrolment from the console while online: a refused token changes
// nothing and the refusal comes back at once; a recovery token replaces
// the certificate (same ID) and the tunnel comes back with it.
func TestReenrolWhileOnline(t *testing.T) {
	cp := lab.NewTest(t, lab.WithHeartbeat(time.Second)) // slow enough for a loaded CI machine
	r := startWithTunnel(t, cp, nil)
	r.waitFor(t, state.Online)
	first := r.Identity()

	used, _ := cp.Authority.CreateToken("x", 0)
	if _, err := (&enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool}).Enrol(context.Background(), used); err != nil {
		t.Fatal(err)
	}
	var le *localapi.Error
	if err := r.submit(t, used); !errors.As(err, &le) || le.Code != protocol.CodeTokenUsed || le.Hint == "" {
		t.Fatalf("re-enrol with a used token = %v, want token_used with a hint", err)
	}
	if r.State() != state.Online || r.Identity() != first {
		t.Fatalf("a refused re-enrolment changed the connector: %s", r.State())
	}

	rec, _ := cp.Authority.CreateRecoveryToken(first.ConnectorID, 0)
	if err := r.submit(t, rec); err != nil {
		t.Fatalf("re-enrol with a recovery token = %v", err)
	}
	r.waitFor(t, state.Connecting)
	r.waitFor(t, state.Online)
	now := r.Identity()
	if now.ConnectorID != first.ConnectorID || now.Key.Equal(first.Key) {
		t.Errorf("after re-enrolment: connector %s (want %s), new key %v", now.ConnectorID, first.ConnectorID, !now.Key.Equal(first.Key))
	}
}
