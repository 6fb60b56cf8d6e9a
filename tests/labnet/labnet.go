// Package labnet puts the lab control plane, and targets for sessions,
// where a QEMU guest on user-mode networking reaches them — and nothing
// else: inside a network namespace the test creates, on documentation-free
// addresses of QEMU's user network (10.0.2.100 and up) that QEMU forwards
// (guestfwd) to a relay started per connection.
//
// The lab listens on LabAddr inside the namespace, so its TLS certificate
// names the address the guest dials. QEMU itself runs inside the
// namespace (Configure points Config.QEMU at a wrapper), and so do the
// relays it starts: the test binary run again with RelayEnv set, which
// TestMain hands to RelayMain.
//
// Using it needs root (ip netns) and iproute2; New skips the test with the
// reason otherwise.
package labnet

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/tests/qemu"
)

// LabAddr is the lab control plane as the guest sees it.
const LabAddr = "10.0.2.100:8443"

// RelayEnv makes the test binary a one-connection TCP relay (stdin/stdout
// ↔ the address in the variable); QEMU runs it per guest connection.
const RelayEnv = "VAULTPAM_TEST_RELAY"

// RelayMain relays stdin/stdout to the address in RelayEnv and exits when
// the variable is set; otherwise it returns at once. Call it first in
// TestMain of a package that uses Net.
func RelayMain() {
	addr := os.Getenv(RelayEnv)
	if addr == "" {
		return
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
	go func() { io.Copy(c, os.Stdin); c.(*net.TCPConn).CloseWrite() }()
	io.Copy(os.Stdout, c)
	os.Exit(0)
}

// Net is a network namespace holding the lab and targets.
type Net struct {
	// NS is the namespace's name.
	NS string
	// Lab is the lab control plane listening on LabAddr in NS.
	Lab *lab.ControlPlane
	// CA is the lab CA (PEM), for the appliance's /config/ca.pem.
	CA []byte

	dir     string
	mu      sync.Mutex
	fwds    []qemu.GuestFwd
	events  []Event
	changed chan struct{} // closed and replaced on every event
}

// Event is a connector status change the lab recorded.
type Event struct {
	At        time.Time
	Connector lab.Connector
}

// New makes a namespace for t (deleted when t ends) with the lab in it,
// its state in dir/lab. It skips t when not root or without ip(8).
func New(t testing.TB, dir string) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test makes a network namespace for the lab")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip is not installed (package iproute2)")
	}
	n := &Net{NS: fmt.Sprintf("vpl%d-%d", os.Getpid(), nsSeq()), dir: dir, changed: make(chan struct{})}
	mustRun(t, "ip", "netns", "add", n.NS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.NS).Run() })
	mustRun(t, "ip", "-n", n.NS, "link", "set", "lo", "up")
	state := filepath.Join(dir, "lab")
	var cp *lab.ControlPlane
	err := n.listenIn(LabAddr, func() error {
		var err error
		cp, err = lab.New(lab.Config{Authority: lab.DefaultAuthorityConfig(state), Listen: LabAddr})
		return err
	})
	if err != nil {
		t.Fatalf("starting the lab control plane in %s: %v", n.NS, err)
	}
	t.Cleanup(func() { cp.Close() })
	n.Lab = cp
	cp.Authority.OnChange(n.record)
	if n.CA, err = os.ReadFile(filepath.Join(state, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	n.forward(t, LabAddr)
	return n
}

var (
	seqMu sync.Mutex
	seq   int
)

func nsSeq() int {
	seqMu.Lock()
	defer seqMu.Unlock()
	seq++
	return seq
}

// URL is the lab's URL as the guest uses it.
func (n *Net) URL() string { return "https://" + LabAddr }

// EchoTarget starts a TCP echo server on addr (an address of QEMU's user
// network, e.g. 10.0.2.101:7000) inside the namespace and forwards the
// guest's connections to it: a target for sessions through the
// appliance. It stops when t ends.
func (n *Net) EchoTarget(t testing.TB, addr string) {
	t.Helper()
	var l net.Listener
	err := n.listenIn(addr, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("echo target on %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	n.forward(t, addr)
}

// listenIn adds addr's IP to the namespace's loopback and runs listen on
// an OS thread switched into the namespace, so the sockets it opens live
// there.
func (n *Net) listenIn(addr string, listen func() error) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if out, err := exec.Command("ip", "-n", n.NS, "addr", "add", host+"/32", "dev", "lo").CombinedOutput(); err != nil &&
		!strings.Contains(string(out), "exists") {
		return fmt.Errorf("adding %s in %s: %v: %s", host, n.NS, err, out)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(n.NS)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		err = listen()
		// A thread that cannot go back stays locked and dies with the
		// goroutine instead of serving others in the wrong namespace.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// forward adds a guest forward of addr to a relay dialling addr.
func (n *Net) forward(t testing.TB, addr string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	relay := filepath.Join(n.dir, "relay-"+strings.NewReplacer(".", "_", ":", "-").Replace(addr))
	script := fmt.Sprintf("#!/bin/sh\n%s=%s exec %s\n", RelayEnv, addr, self)
	if err := os.WriteFile(relay, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.fwds = append(n.fwds, qemu.GuestFwd{Addr: addr, Cmd: relay})
	n.mu.Unlock()
}

// Configure makes cfg run QEMU inside the namespace with a user-mode NIC
// that forwards the lab's and the targets' addresses.
func (n *Net) Configure(t testing.TB, cfg *qemu.Config) {
	t.Helper()
	wrapper := filepath.Join(n.dir, "qemu-in-"+n.NS)
	q := cfg.QEMU
	if q == "" {
		q = qemu.DefaultConfig("").QEMU
	}
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", n.NS, q)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cfg.QEMU = wrapper
	cfg.Network = true
	cfg.GuestFwd = append([]qemu.GuestFwd(nil), n.fwds...)
}

func (n *Net) record(c lab.Connector) {
	n.mu.Lock()
	n.events = append(n.events, Event{At: time.Now(), Connector: c})
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

// Mark returns the position in the lab's status history from which
// WaitFor looks.
func (n *Net) Mark() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.events)
}

// Events returns the status changes recorded from mark on.
func (n *Net) Events(mark int) []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Event(nil), n.events[min(mark, len(n.events)):]...)
}

// WaitFor waits for a status change at or after mark that match accepts
// and returns its position and the connector as it was then. It fails
// when ctx ends, naming what the lab saw meanwhile.
func (n *Net) WaitFor(ctx context.Context, mark int, match func(lab.Connector) bool) (int, lab.Connector, error) {
	for i := mark; ; {
		n.mu.Lock()
		for ; i < len(n.events); i++ {
			if c := n.events[i].Connector; match(c) {
				n.mu.Unlock()
				return i, c, nil
			}
		}
		changed := n.changed
		n.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			var seen []string
			for _, e := range n.Events(mark) {
				seen = append(seen, fmt.Sprintf("%s %s=%s %q", e.At.Format("15:04:05"), e.Connector.Name, e.Connector.Status, e.Connector.StatusReason))
			}
			return 0, lab.Connector{}, fmt.Errorf("the lab saw no such status change (%w); it saw: [%s]", ctx.Err(), strings.Join(seen, "; "))
		}
	}
}

// Connector returns the lab's record of connector id.
func (n *Net) Connector(id string) (lab.Connector, bool) { return n.Lab.Authority.Connector(id) }

// ConnectorNamed returns the lab's connector called name, if exactly one.
func (n *Net) ConnectorNamed(name string) (lab.Connector, error) {
	var found []lab.Connector
	for _, c := range n.Lab.Authority.Connectors() {
		if c.Name == name {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return lab.Connector{}, fmt.Errorf("the lab has no connector named %q", name)
	}
	return lab.Connector{}, fmt.Errorf("the lab has %d connectors named %q", len(found), name)
}

func mustRun(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
