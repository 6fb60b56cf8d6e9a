package tunnel_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vaultpam/appliance/connector/allowlist"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// refusedNotAllowed dials target through the harness and checks the
// connector refused it with not_allowed naming what, without dialling.
func refusedNotAllowed(t *testing.T, h *brokertest.Harness, dials *atomic.Int32, target, what string) {
	t.Helper()
	before := dials.Load()
	_, err := h.Broker.Dial(context.Background(), "c1", target)
	var be *broker.Error
	if !errors.As(err, &be) || be.Reason != protocol.ReasonNotAllowed || !strings.Contains(be.Message, what) {
		t.Errorf("Dial(%s) = %v; want not_allowed naming %q", target, err, what)
	}
	if dials.Load() != before {
		t.Errorf("the connector dialled %s before refusing it", target)
	}
}

// countTargetDials counts the connector's target dials. It dials only
// loopback: a test (or a broken build under test) must never send a
// packet to any other address, not even the metadata address it checks.
func countTargetDials(n *atomic.Int32) func(*tunnel.Config) {
	return func(c *tunnel.Config) {
		c.DialTarget = func(ctx context.Context, network, addr string) (net.Conn, error) {
			n.Add(1)
			if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().Unmap().IsLoopback() {
				return nil, errors.New("test guard: not dialling a non-loopback address")
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
	}
}

// With no allowed_targets, a session to the appliance itself (loopback,
// here the echo target) or to the metadata address is refused by the
// connector, over real TLS and yamux, without a dial; naming loopback in
// allowed_targets allows it.
func TestDefaultDenySetOverTheTunnel(t *testing.T) {
	var dials atomic.Int32
	h := brokertest.NewHarness(t, brokertest.Options{DefaultPolicy: true, EditClient: countTargetDials(&dials)})
	h.WaitOnline()
	_, port, _ := net.SplitHostPort(h.Echo.Addr)
	refusedNotAllowed(t, h, &dials, h.Echo.Addr, "loopback")
	refusedNotAllowed(t, h, &dials, "localhost:"+port, "loopback")
	refusedNotAllowed(t, h, &dials, "[::ffff:127.0.0.1]:"+port, "loopback")
	refusedNotAllowed(t, h, &dials, "169.254.169.254:80", "metadata service")
	refusedNotAllowed(t, h, &dials, "0.0.0.0:"+port, "this host")

	named := brokertest.NewHarness(t, brokertest.Options{Allowed: []string{"127.0.0.0/8"}})
	named.WaitOnline()
	s, err := named.Broker.Dial(context.Background(), "c1", named.Echo.Addr)
	if err != nil {
		t.Fatalf("Dial to a loopback target named in allowed_targets = %v, want allowed", err)
	}
	s.Close()
}

// The appliance's own addresses are read from its interfaces at dial
// time: a session to this machine's real (non-loopback) interface address
// is refused with no allowed_targets, and never dialled.
func TestOwnInterfaceAddressRefused(t *testing.T) {
	ps, err := allowlist.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var own netip.Addr
	for _, p := range ps {
		if a := p.Addr(); !a.IsLoopback() && !a.IsLinkLocalUnicast() {
			own = a
			break
		}
	}
	if !own.IsValid() {
		t.Skip("this machine has no non-loopback, non-link-local interface address")
	}
	var dials atomic.Int32
	h := brokertest.NewHarness(t, brokertest.Options{DefaultPolicy: true, EditClient: countTargetDials(&dials)})
	h.WaitOnline()
	refusedNotAllowed(t, h, &dials, netip.AddrPortFrom(own, 22).String(), "this appliance's own address")
}

// Addresses that appear after start (DHCP, a second NIC) are denied at
// once: LocalAddrs is read for every session.
func TestOwnAddressesReadAtDialTime(t *testing.T) {
	var locals atomic.Value
	locals.Store([]netip.Prefix{})
	var dials atomic.Int32
	h := brokertest.NewHarness(t, brokertest.Options{DefaultPolicy: true, EditClient: func(c *tunnel.Config) {
		countTargetDials(&dials)(c)
		c.LocalAddrs = func() ([]netip.Prefix, error) { return locals.Load().([]netip.Prefix), nil }
		c.DialTarget = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return nil, errors.New("no route (test)")
		}
	}})
	h.WaitOnline()
	_, err := h.Broker.Dial(context.Background(), "c1", "198.51.100.20:22")
	if !errors.Is(err, broker.ErrTargetUnreachable) {
		t.Fatalf("Dial before the address is ours = %v, want it dialled (and failing)", err)
	}
	locals.Store([]netip.Prefix{netip.MustParsePrefix("198.51.100.20/24")})
	refusedNotAllowed(t, h, &dials, "198.51.100.20:22", "this appliance's own address")
	refusedNotAllowed(t, h, &dials, "198.51.100.255:22", "broadcast of this appliance's subnet")
}
