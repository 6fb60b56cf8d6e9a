package labnet

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/lab/inspect"
	"github.com/vaultpam/appliance/tests/qemu"
)

// A switched lab network puts the guest's network card on a real Ethernet
// segment instead of QEMU's user-mode network: QEMU sends its frames over
// a socket (-netdev socket) to Switch, which plays an 802.1Q switch port
// and hands them to a tap device inside the lab's namespace. The tap is
// the guest's router (IPv6 here, no IPv4 at all); the lab control plane
// listens behind it, on an address reached only through that router.
//
// The port is a trunk carrying one VLAN: frames the guest sends tagged
// with VLAN go to the tap untagged, frames from the tap go to the guest
// tagged; untagged frames from the guest are dropped (counted), as a
// switch port with no native VLAN does. The host kernel of these test
// machines has no 8021q, so the tagging is done here, in user space; the
// guest's own kernel does its side (8021q, systemd-networkd's .netdev).

// SwitchedConfig describes a switched lab network.
type SwitchedConfig struct {
	VLAN   int    // 802.1Q VLAN ID on the guest's side; 0 = untagged port
	Router string // the tap's address with prefix, e.g. 2001:db8::1/64
	Lab    string // the lab's host:port, e.g. [2001:db8:cafe::1]:8443, on the namespace's loopback
}

// Switch is the user-space switch port between QEMU and the tap.
type Switch struct {
	VLAN int
	// Counters: frames from the guest passed to the tap (tagged with
	// VLAN), dropped (untagged or another VLAN), and frames to the guest.
	Tagged, Dropped, ToGuest atomic.Int64

	l    net.Listener
	tap  *os.File
	mu   sync.Mutex
	conn net.Conn // QEMU's current connection
}

// NewSwitched makes a namespace for t with a tap device, the user-space
// switch QEMU connects to and the lab behind the tap. Use ConfigureSwitched
// (after scenario.NewAppliance) to put the guest's card on it.
func NewSwitched(t testing.TB, dir string, cfg SwitchedConfig) (*Net, *Switch) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test makes a network namespace and a tap device")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun for the tap device")
	}
	labHost, _, err := net.SplitHostPort(cfg.Lab)
	if err != nil {
		t.Fatalf("lab address %q: %v", cfg.Lab, err)
	}
	n := &Net{NS: fmt.Sprintf("vps%d-%d", os.Getpid(), nsSeq()), dir: dir, changed: make(chan struct{})}
	mustRun(t, "ip", "netns", "add", n.NS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.NS).Run() })
	mustRun(t, "ip", "-n", n.NS, "link", "set", "lo", "up")
	mustRun(t, "ip", "-n", n.NS, "tuntap", "add", "dev", "vpt0", "mode", "tap")
	mustRun(t, "ip", "-n", n.NS, "addr", "add", cfg.Router, "dev", "vpt0", "nodad")
	mustRun(t, "ip", "-n", n.NS, "link", "set", "vpt0", "up")
	bits := "/32"
	if strings.Contains(labHost, ":") {
		bits = "/128"
	}
	mustRun(t, "ip", "-n", n.NS, "addr", "add", labHost+bits, "dev", "lo")

	sw := &Switch{VLAN: cfg.VLAN}
	state := filepath.Join(dir, "lab")
	var cp *lab.ControlPlane
	err = inNamespace(n.NS, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq("vpt0")
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("attaching to tap vpt0: %w", err)
		}
		sw.tap = os.NewFile(uintptr(fd), "vpt0")
		if sw.l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		cp, err = lab.New(lab.Config{Authority: lab.DefaultAuthorityConfig(state), Listen: cfg.Lab})
		return err
	})
	if err != nil {
		t.Fatalf("setting up the switched lab network in %s: %v", n.NS, err)
	}
	t.Cleanup(func() { cp.Close(); sw.Close() })
	n.Lab = cp
	cp.Authority.OnChange(n.record)
	if n.CA, err = os.ReadFile(filepath.Join(state, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	go sw.fromTap()
	go sw.accept()
	return n, sw
}

// inNamespace runs fn on an OS thread switched into the namespace ns.
func inNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// ConfigureSwitched puts cfg's network card (vmxnet3, as on vSphere) on
// the switch instead of QEMU's user-mode network. Call it after
// Configure (scenario.NewAppliance does that), which it partly undoes.
func (s *Switch) ConfigureSwitched(cfg *qemu.Config) {
	cfg.Network, cfg.GuestFwd = false, nil
	cfg.ExtraArgs = append(cfg.ExtraArgs,
		"-netdev", "socket,id=net1,connect="+s.l.Addr().String(),
		"-device", "vmxnet3,netdev=net1,mac=00:50:56:a1:b2:c3")
}

// Close stops the switch.
func (s *Switch) Close() {
	s.l.Close()
	s.tap.Close()
	s.mu.Lock()
	if s.conn != nil {
		s.conn.Close()
	}
	s.mu.Unlock()
}

// accept takes QEMU's connections: one per power-on.
func (s *Switch) accept() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.conn != nil {
			s.conn.Close()
		}
		s.conn = c
		s.mu.Unlock()
		go s.fromGuest(c)
	}
}

// fromGuest reads QEMU's frames (a 4-byte big-endian length, then the
// frame) and passes those tagged with the port's VLAN to the tap,
// untagged.
func (s *Switch) fromGuest(c net.Conn) {
	var hdr [4]byte
	buf := make([]byte, 65536)
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > uint32(len(buf)) {
			return
		}
		f := buf[:n]
		if _, err := io.ReadFull(c, f); err != nil {
			return
		}
		if s.VLAN != 0 {
			if len(f) < 18 || binary.BigEndian.Uint16(f[12:14]) != 0x8100 || int(binary.BigEndian.Uint16(f[14:16])&0x0fff) != s.VLAN {
				s.Dropped.Add(1)
				continue
			}
			f = append(append(make([]byte, 0, len(f)-4), f[:12]...), f[16:]...)
		}
		s.Tagged.Add(1)
		s.tap.Write(f)
	}
}

// fromTap reads the tap's frames and sends them to the guest, tagged.
func (s *Switch) fromTap() {
	buf := make([]byte, 65536)
	for {
		n, err := s.tap.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		f := buf[:n]
		if s.VLAN != 0 && len(f) >= 14 {
			tag := []byte{0x81, 0x00, byte(s.VLAN >> 8), byte(s.VLAN)}
			f = append(append(append(make([]byte, 0, n+4), f[:12]...), tag...), f[12:]...)
		}
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(f)))
		s.mu.Lock()
		c := s.conn
		s.mu.Unlock()
		if c == nil {
			continue
		}
		if _, err := c.Write(append(hdr[:], f...)); err == nil {
			s.ToGuest.Add(1)
		}
	}
}

// StartInspectingProxy runs an inspect.Proxy on addr (host:port, the
// host added to the namespace's loopback) inside the namespace, verifying
// the lab with its CA and passing the tunnel's ALPN through. It stops
// when t ends.
func (n *Net) StartInspectingProxy(t testing.TB, addr string) *inspect.Proxy {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("proxy address %q: %v", addr, err)
	}
	bits := "/32"
	if strings.Contains(host, ":") {
		bits = "/128"
	}
	mustRun(t, "ip", "-n", n.NS, "addr", "add", host+bits, "dev", "lo")
	var l net.Listener
	if err := inNamespace(n.NS, func() (err error) { l, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("proxy on %s in %s: %v", addr, n.NS, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(n.CA)
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		var c net.Conn
		err := inNamespace(n.NS, func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, a); return err })
		return c, err
	}
	p, err := inspect.New(inspect.Config{Listener: l, Dial: dial, Upstream: pool, Splice: []string{protocol.ALPNTunnel}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
