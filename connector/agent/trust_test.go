package agent

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// switchProxy is a TCP front whose backend can be switched: the connector
// is configured with its address and reaches whatever it points at.
type switchProxy struct {
	addr    string
	backend atomic.Value // string
}

func newSwitchProxy(t *testing.T, backend string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &switchProxy{addr: ln.Addr().String()}
	p.backend.Store(backend)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", p.backend.Load().(string))
				if err != nil {
					return
				}
				defer up.Close()
				var wg sync.WaitGroup
				wg.Add(1)
				go func() { defer wg.Done(); io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, up)
				wg.Wait()
			}()
		}
	}()
	return p
}

// impostor is a TLS server whose certificate the connector cannot verify:
// issued by another CA (a TLS-inspecting proxy's, say).
func impostor(t *testing.T) string {
	t.Helper()
	other, err := brokertest.NewPKINamed("Inspecting Proxy CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := other.ServerCertFor(time.Now().Add(-time.Hour), 24*time.Hour, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
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
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// An identity whose certificate has expired by this machine's clock is
// not given up: the control plane decides, and here it accepts it (this
// clock was wrong).
func TestLocallyExpiredIdentityAsksTheControlPlane(t *testing.T) {
	cp := lab.NewTest(t)
	dir := t.TempDir()
	r1 := start(t, cp, &identity.Dir{Path: dir}, durable, newToken(t, cp))
	r1.waitFor(t, state.Connecting)
	id := r1.Identity()
	r1.stop()

	store := &identity.Dir{Path: dir, Now: func() time.Time { return id.Leaf().NotAfter.Add(time.Hour) }}
	r2 := start(t, cp, store, durable, "")
	st := r2.Status()
	if st.State != state.Connecting.String() || !strings.Contains(st.Reason, "by this machine's clock") || !strings.Contains(st.Reason, "expired") {
		t.Fatalf("status at start = %s %q; want connecting, the local clock's concern in the reason", st.State, st.Reason)
	}
	for tr := r2.waitFor(t, state.Connecting); !strings.Contains(tr.Reason, "identity accepted"); tr = r2.waitFor(t, state.Connecting) {
	}
	for _, tr := range r2.History() {
		if tr.To == state.NeedsRecovery {
			t.Errorf("went to needs_recovery on this machine's clock's opinion: %+v", tr)
		}
	}
}

// The control plane's clock says the certificate expired: that verdict,
// about this very certificate, is final.
func TestControlPlaneSaysExpired(t *testing.T) {
	var skew atomic.Int64
	cp := lab.NewTest(t, lab.WithNow(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }))
	store := &identity.Dir{Path: t.TempDir()}
	r1 := start(t, cp, store, durable, newToken(t, cp))
	r1.waitFor(t, state.Connecting)
	id := r1.Identity()
	r1.stop()
	skew.Store(int64(time.Until(id.Leaf().NotAfter) + time.Hour))
	r2 := start(t, cp, store, durable, "")
	tr := r2.waitFor(t, state.NeedsRecovery)
	if !strings.Contains(tr.Reason, protocol.CodeCertExpired) || r2.Status().Hint == "" {
		t.Errorf("needs_recovery reason %q hint %q; want cert_expired and a hint", tr.Reason, r2.Status().Hint)
	}
}

// A control plane certificate the connector cannot verify (here: another
// CA's, as a TLS-inspecting proxy would present) is never a reason to
// give up: neither the identity check nor the enrolment. The status says
// precisely what is wrong, and both go through once it is fixed, with
// the same token (it was never consumed).
func TestUnverifiableControlPlaneIsRetried(t *testing.T) {
	for _, phase := range []string{"identity check", "enrolment"} {
		t.Run(phase, func(t *testing.T) {
			cp := lab.NewTest(t)
			front := newSwitchProxy(t, cp.Addr().String())
			url := "https://" + front.addr
			store := &identity.Mem{}
			opt := Options{
				Config: config.Config{ControlPlaneURL: url, ConnectorName: "dc1"}, Store: store, Mode: durable,
				Enroller: &enrol.Client{URL: url, RootCAs: cp.CAPool, Name: "dc1"},
			}
			tok := newToken(t, cp)
			if phase == "identity check" {
				opt.Token = tok
				r := launch(t, opt)
				r.waitFor(t, state.Connecting)
				r.stop()
				opt.Token = ""
			}
			front.backend.Store(impostor(t))
			r := launch(t, opt)
			if phase == "enrolment" {
				if err := r.submit(t, tok); err != nil {
					t.Fatal(err)
				}
			}
			want := state.Reconnecting
			if phase == "enrolment" {
				want = state.Enrolling
			}
			var tr Transition
			for tr = r.waitFor(t, want); !strings.Contains(tr.Reason, `issued by "CN=Inspecting Proxy CA"`); tr = r.waitFor(t, want) {
			}
			if st := r.Status(); !strings.Contains(st.Hint, "control_plane_ca_file") {
				t.Errorf("hint %q does not point at control_plane_ca_file", st.Hint)
			}
			front.backend.Store(cp.Addr().String())
			for tr = r.waitFor(t, state.Connecting); !strings.Contains(tr.Reason, "identity accepted"); tr = r.waitFor(t, state.Connecting) {
			}
			for _, tr := range r.History() {
				if tr.To == state.NeedsRecovery || tr.To == state.AwaitingToken {
					t.Errorf("gave up on an unverifiable control plane: %+v", tr)
				}
			}
			if n := len(cp.Authority.Connectors()); n != 1 {
				t.Errorf("%d connectors at the control plane, want 1", n)
			}
		})
	}
}

// The status JSON carries the effective target policy, the appliance's
// current addresses included, for the health screen.
func TestStatusShowsTargetPolicy(t *testing.T) {
	cp := lab.NewTest(t)
	locals := func() ([]netip.Prefix, error) { return []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}, nil }
	for _, entries := range [][]string{nil, {"10.20.0.0/16", "db.internal:5432"}} {
		r := launch(t, Options{
			Config: config.Config{ControlPlaneURL: cp.URL(), ConnectorName: "dc1", AllowedTargets: entries}, Store: &identity.Mem{}, Mode: durable,
			Enroller: &enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool}, LocalAddrs: locals,
		})
		tp := r.Status().AllowedTargets
		if tp == nil {
			t.Fatal("status has no allowed_targets")
		}
		var ranges []string
		for _, d := range tp.Denied {
			ranges = append(ranges, d.Range+" "+d.What)
		}
		all := strings.Join(ranges, "\n")
		for _, want := range []string{"127.0.0.0/8 loopback", "169.254.0.0/16 link-local (incl. the metadata service 169.254.169.254)", "192.0.2.10/32 this appliance's own address", "192.0.2.255/32 broadcast"} {
			if !strings.Contains(all, want) {
				t.Errorf("denied ranges lack %q:\n%s", want, all)
			}
		}
		if tp.All != (len(entries) == 0) || len(tp.Entries) != len(entries) || tp.Summary == "" {
			t.Errorf("allowed_targets %v → %+v", entries, tp)
		}
		r.stop()
	}
}
