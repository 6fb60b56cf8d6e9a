package tunnel_test

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// fakeDNS answers every A query with a4 and every AAAA query with a6, on
// loopback UDP, and records the query types it saw.
type fakeDNS struct {
	addr   string
	a4, a6 net.IP
	mu     sync.Mutex
	types  map[uint16]bool
}

func newFakeDNS(t *testing.T, a4, a6 string) *fakeDNS {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	f := &fakeDNS{addr: pc.LocalAddr().String(), a4: net.ParseIP(a4).To4(), a6: net.ParseIP(a6), types: map[uint16]bool{}}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := f.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	return f
}

// answer builds the response to one query: the header with QR set, the
// question copied, and one answer record pointing at the question's name.
func (f *fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	i := 12
	for i < len(q) && q[i] != 0 { // the question's name, as labels
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	question := q[12 : i+5]
	f.mu.Lock()
	f.types[qtype] = true
	f.mu.Unlock()
	var rdata []byte
	switch qtype {
	case 1:
		rdata = f.a4
	case 28:
		rdata = f.a6
	}
	resp := make([]byte, 12, 12+len(question)+16+len(rdata))
	copy(resp, q[:2])                            // ID
	binary.BigEndian.PutUint16(resp[2:], 0x8180) // response, recursion desired and available, no error
	binary.BigEndian.PutUint16(resp[4:], 1)      // one question
	resp = append(resp, question...)
	if rdata != nil {
		binary.BigEndian.PutUint16(resp[6:], 1) // one answer
		rr := []byte{0xc0, 0x0c, 0, byte(qtype), 0, 1, 0, 0, 0, 60, 0, byte(len(rdata))}
		resp = append(append(resp, rr...), rdata...)
	}
	return resp
}

func (f *fakeDNS) saw(qtype uint16) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.types[qtype]
}

// The control plane as a name with A and AAAA records: the tunnel hands
// the name to the dialer with network "tcp" (never "tcp4" or "tcp6"), so
// Go's dialer asks for both and races the families (RFC 6555); here the
// IPv6 address refuses and the IPv4 one answers, and the tunnel comes up.
func TestControlPlaneNameDualStack(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the fake resolver's Dial is exercised on Linux")
	}
	dns := newFakeDNS(t, "127.0.0.1", "::1")
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", dns.addr)
	}}
	h := brokertest.NewHarness(t, brokertest.Options{EditClient: func(c *tunnel.Config) {
		_, port, _ := net.SplitHostPort(c.Address)
		c.Address, c.ServerName = net.JoinHostPort("cp.vaultpam.test", port), "localhost"
		c.DialControlPlane = (&net.Dialer{Resolver: resolver}).DialContext
	}})
	h.WaitOnline()
	if !dns.saw(1) || !dns.saw(28) {
		t.Errorf("the dialer asked for A %v and AAAA %v, want both", dns.saw(1), dns.saw(28))
	}
}

// No dialer in the connector pins an address family: "tcp4" or "tcp6"
// would turn off dual-stack dialling for the control plane, the proxy,
// downloads and targets.
func TestNoDialerPinsAFamily(t *testing.T) {
	root := filepath.Join("..")
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, bad := range []string{`"tcp4"`, `"tcp6"`} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s dials %s: use \"tcp\" so both address families are tried", p, bad)
			}
		}
		return nil
	})
}
