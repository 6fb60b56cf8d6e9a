package tunnel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// TestSessionBytesUnchanged sends 1 B to 100 MiB through a session to an
// echo target and checks every byte comes back, then the end reasons.
func TestSessionBytesUnchanged(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{})
	h.WaitOnline()
	sizes := []int{1, 1000, 64 << 10, 1 << 20, 100 << 20}
	if testing.Short() {
		sizes = sizes[:4]
	}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s, err := h.Broker.Dial(context.Background(), "c1", h.Echo.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			src := rand.NewChaCha8([32]byte{byte(size)})
			want := sha256.New()
			go func() {
				io.Copy(s, io.TeeReader(io.LimitReader(src, int64(size)), want))
				s.CloseWrite()
			}()
			got := sha256.New()
			n, err := io.Copy(got, s)
			if err != nil {
				t.Fatalf("reading echo: %v", err)
			}
			if n != int64(size) || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
				t.Fatalf("echo returned %d bytes (sha256 %x), want %d bytes (sha256 %x)", n, got.Sum(nil), size, want.Sum(nil))
			}
			<-s.Done()
			if r, _ := s.Reason(); r != protocol.ReasonClientClosed {
				t.Errorf("Reason() = %q, want %q (our CloseWrite came first)", r, protocol.ReasonClientClosed)
			}
			brokertest.WaitFor(t, "connector's session end report", func() bool {
				for _, e := range h.EndsFor(s.ID) {
					if e.By == "connector" {
						return true
					}
				}
				return false
			})
			for _, e := range h.EndsFor(s.ID) {
				if e.By == "connector" && (e.Reason != string(protocol.ReasonClientClosed) || e.BytesUp != int64(size) || e.BytesDown != int64(size)) {
					t.Errorf("connector reported %+v, want reason client_closed and %d bytes each way", e, size)
				}
			}
		})
	}
}

// TestTargetClosesFirst: the target ends the session, the reason says so.
func TestTargetClosesFirst(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{})
	h.WaitOnline()
	s, err := h.Broker.Dial(context.Background(), "c1", h.Echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(s, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo = %q, %v; want ping", buf, err)
	}
	h.Echo.Close() // closes the target connection
	if _, err := s.Read(buf); err != io.EOF {
		t.Fatalf("Read after target close = %v, want io.EOF", err)
	}
	s.CloseWrite()
	<-s.Done()
	if r, _ := s.Reason(); r != protocol.ReasonTargetClosed {
		t.Errorf("Reason() = %q, want %q", r, protocol.ReasonTargetClosed)
	}
}

// TestNotAllowedReachesCaller: the connector refuses targets outside
// allowed_targets and the typed reason reaches Dial's caller.
func TestNotAllowedReachesCaller(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{Allowed: []string{"10.20.0.0/16", "db.internal:5432"}})
	h.WaitOnline()
	_, err := h.Broker.Dial(context.Background(), "c1", h.Echo.Addr)
	var be *broker.Error
	if !errors.As(err, &be) || be.Reason != protocol.ReasonNotAllowed || !errors.Is(err, broker.ErrNotAllowed) {
		t.Fatalf("Dial to %s = %v, want a not_allowed *broker.Error", h.Echo.Addr, err)
	}
	t.Logf("caller sees: %v", err)
}

// TestDialFailedReachesCaller: an unreachable target is refused with
// dial_failed.
func TestDialFailedReachesCaller(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{})
	h.WaitOnline()
	addr := h.Echo.Addr
	h.Echo.Close()
	_, err := h.Broker.Dial(context.Background(), "c1", addr)
	if !errors.Is(err, broker.ErrTargetUnreachable) {
		t.Fatalf("Dial to closed port = %v, want ErrTargetUnreachable", err)
	}
}

// TestDialTimeoutReachesCaller: a target that never answers is refused
// with dial_timeout once the connector's dial timeout passes.
func TestDialTimeoutReachesCaller(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{EditClient: func(c *tunnel.Config) {
		c.DialTimeout = 200 * time.Millisecond
		c.DialTarget = func(ctx context.Context, _, _ string) (net.Conn, error) {
			<-ctx.Done() // a black-holed target
			return nil, ctx.Err()
		}
	}})
	h.WaitOnline()
	_, err := h.Broker.Dial(context.Background(), "c1", h.Echo.Addr)
	var be *broker.Error
	if !errors.As(err, &be) || be.Reason != protocol.ReasonDialTimeout || !errors.Is(err, broker.ErrTargetUnreachable) {
		t.Fatalf("Dial to a black hole = %v, want dial_timeout", err)
	}
}

// TestCloseMidStreamAbortsConnectorSide: closing a session while the
// target still sends makes the connector end its relay too, reported as
// client_closed.
func TestCloseMidStreamAbortsConnectorSide(t *testing.T) {
	h := brokertest.NewHarness(t, brokertest.Options{})
	h.WaitOnline()
	s, err := h.Broker.Dial(context.Background(), "c1", h.Echo.Addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(s, "x")
	io.ReadFull(s, make([]byte, 1))
	s.Close()
	brokertest.WaitFor(t, "connector's report", func() bool {
		for _, e := range h.EndsFor(s.ID) {
			if e.By == "connector" {
				return e.Reason == string(protocol.ReasonClientClosed)
			}
		}
		return false
	})
	brokertest.WaitFor(t, "no sessions left on the connector", func() bool { return h.Client.Status().ActiveSessions == 0 })
}
