package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/atomicfile"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// makeIdentity issues a self-contained identity for connector id valid
// from t0 for a day.
func makeIdentity(t testing.TB, id string) *Identity {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("vaultpam://connector/" + id)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: id}, URIs: []*url.URL{u}, NotBefore: t0, NotAfter: t0.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	idn, err := New(key, id, "https://cp.example.com", certPEM, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	return idn
}

func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestDirRoundTrip(t *testing.T) {
	d := &Dir{Path: t.TempDir(), Now: clock(t0.Add(time.Hour))}
	if _, err := d.Load(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load(empty) = %v, want ErrNotFound", err)
	}
	id := makeIdentity(t, "conn-a")
	if err := d.Save(id); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(d.Path, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode = %v, want 0600", fi.Mode().Perm())
	}
	got, err := d.Load()
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if got.ConnectorID != "conn-a" || !got.Key.Equal(id.Key) || !bytes.Equal(got.Leaf().Raw, id.Leaf().Raw) || !bytes.Equal(got.CAPEM, id.CAPEM) || got.CAPool() == nil {
		t.Errorf("Load returned a different identity")
	}
}

func TestLoadChecks(t *testing.T) {
	id := makeIdentity(t, "conn-a")
	other := makeIdentity(t, "conn-b")
	for _, tc := range []struct {
		name string
		id   *Identity
		now  time.Time
		want error
	}{
		{"expired", id, t0.Add(25 * time.Hour), ErrExpired},
		{"not yet valid", id, t0.Add(-time.Hour), ErrNotYetValid},
		{"key mismatch", &Identity{ConnectorID: "conn-a", ControlPlane: id.ControlPlane, Key: other.Key, Chain: id.Chain, CAPEM: id.CAPEM}, t0.Add(time.Hour), ErrKeyMismatch},
		{"wrong connector", &Identity{ConnectorID: "conn-x", ControlPlane: id.ControlPlane, Key: id.Key, Chain: id.Chain, CAPEM: id.CAPEM}, t0.Add(time.Hour), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Dir{Path: t.TempDir(), Now: clock(tc.now)}
			if err := d.Save(tc.id); err != nil {
				t.Fatal(err)
			}
			got, err := d.Load()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Load = %v, want %v", err, tc.want)
			}
			if got == nil || got.ConnectorID != tc.id.ConnectorID {
				t.Errorf("Load did not return the identity along with the error")
			}
			for _, other := range []error{ErrExpired, ErrNotYetValid, ErrKeyMismatch, ErrCorrupt, ErrNotFound} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
		})
	}
}

func TestCorruptFile(t *testing.T) {
	d := &Dir{Path: t.TempDir(), Now: clock(t0.Add(time.Hour))}
	if err := d.Save(makeIdentity(t, "conn-a")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.Path, FileName)
	good, _ := os.ReadFile(p)
	for i, bad := range [][]byte{
		good[:len(good)/2], // truncated
		bytes.Replace(good, []byte("conn-a"), []byte("conn-b"), 1), // edited
		{},
		[]byte("not json"),
	} {
		os.WriteFile(p, bad, 0o600)
		if id, err := d.Load(); !errors.Is(err, ErrCorrupt) || id != nil {
			t.Errorf("case %d: Load = %v, %v; want nil, ErrCorrupt", i, id, err)
		}
	}
	// Replacing a corrupted file keeps it for inspection.
	if err := d.Save(makeIdentity(t, "conn-c")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p + ".corrupt"); err != nil || string(b) != "not json" {
		t.Errorf("corrupted file not kept: %q, %v", b, err)
	}
}

// A failure at any step of Save leaves the complete old identity, or (once
// the rename happened) the complete new one.
func TestSaveFailsAtEveryStep(t *testing.T) {
	oldID, newID := makeIdentity(t, "conn-old"), makeIdentity(t, "conn-new")
	for s := atomicfile.Step(0); s < atomicfile.NumSteps; s++ {
		t.Run(s.String(), func(t *testing.T) {
			d := &Dir{Path: t.TempDir(), Now: clock(t0.Add(time.Hour))}
			if err := d.Save(oldID); err != nil {
				t.Fatal(err)
			}
			boom := errors.New("injected")
			d.BeforeStep = func(at atomicfile.Step) error {
				if at == s {
					return boom
				}
				return nil
			}
			if err := d.Save(newID); !errors.Is(err, boom) {
				t.Fatalf("Save = %v, want the injected error", err)
			}
			d.BeforeStep = nil
			got, err := d.Load()
			if err != nil {
				t.Fatalf("Load after failure at %s = %v", s, err)
			}
			want := "conn-old"
			if s > atomicfile.StepRename {
				want = "conn-new"
			}
			if got.ConnectorID != want || !got.Key.Equal(map[string]*Identity{"conn-old": oldID, "conn-new": newID}[want].Key) {
				t.Errorf("after failure at %s: loaded %s, want complete %s", s, got.ConnectorID, want)
			}
		})
	}
}

// The same, with the process really killed (SIGKILL) at each step: the
// helper process below saves and kills itself; the test reads back.
func TestSaveKilledAtEveryStep(t *testing.T) {
	if os.Getenv("IDENTITY_KILL_HELPER") != "" {
		t.Skip("helper mode")
	}
	for s := atomicfile.Step(0); s < atomicfile.NumSteps; s++ {
		t.Run(s.String(), func(t *testing.T) {
			dir := t.TempDir()
			d := &Dir{Path: dir, Now: clock(t0.Add(time.Hour))}
			oldID := makeIdentity(t, "conn-old")
			if err := d.Save(oldID); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$")
			cmd.Env = append(os.Environ(), "IDENTITY_KILL_HELPER=1", "IDENTITY_DIR="+dir, "IDENTITY_KILL_STEP="+strconv.Itoa(int(s)))
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper was not killed: %v\n%s", err, out)
			}
			got, err := d.Load()
			if err != nil {
				t.Fatalf("Load after kill at %s = %v", s, err)
			}
			switch got.ConnectorID {
			case "conn-old":
				if !got.Key.Equal(oldID.Key) {
					t.Errorf("old connector ID with a different key")
				}
				if s > atomicfile.StepRename {
					t.Errorf("after the rename the new identity must be there")
				}
			case "conn-new":
				if s <= atomicfile.StepRename {
					t.Errorf("new identity visible before the rename (killed at %s)", s)
				}
			default:
				t.Errorf("loaded %q", got.ConnectorID)
			}
			// The next Save cleans up what the killed one left.
			if err := d.Save(oldID); err != nil {
				t.Fatal(err)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(m) != 0 {
				t.Errorf("temp files left after the next Save: %v", m)
			}
		})
	}
}

func TestKillHelper(t *testing.T) {
	if os.Getenv("IDENTITY_KILL_HELPER") == "" {
		t.Skip("only runs as the helper process of TestSaveKilledAtEveryStep")
	}
	step, _ := strconv.Atoi(os.Getenv("IDENTITY_KILL_STEP"))
	d := &Dir{Path: os.Getenv("IDENTITY_DIR"), BeforeStep: func(s atomicfile.Step) error {
		if int(s) == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // wait for the signal
		}
		return nil
	}}
	err := d.Save(makeIdentity(t, "conn-new"))
	fmt.Println("helper survived:", err)
}

func TestMem(t *testing.T) {
	m := &Mem{Now: clock(t0.Add(time.Hour))}
	if _, err := m.Load(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load(empty) = %v", err)
	}
	id := makeIdentity(t, "conn-a")
	m.Save(id)
	if got, err := m.Load(); err != nil || got != id || m.Saves() != 1 {
		t.Fatalf("Load = %v, %v", got, err)
	}
	m.Now = clock(t0.Add(48 * time.Hour))
	if _, err := m.Load(); !errors.Is(err, ErrExpired) {
		t.Fatalf("Load(expired) = %v", err)
	}
}

// The pending enrolment round-trips through the data directory, 0600,
// and a damaged one is reported as corrupt, never half-read.
func TestPendingEnrolment(t *testing.T) {
	d := &Dir{Path: t.TempDir()}
	if _, err := d.LoadPending(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadPending on an empty dir = %v, want ErrNotFound", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	p := &Pending{ControlPlane: "https://cp", ChallengeID: "c1", Key: key, CSR: csr, Signature: []byte{1, 2},
		ExpiresAt: time.Now().Add(time.Minute).Round(time.Second).UTC(), Recovery: true, ConnectorID: "conn-1", CreatedAt: time.Now().Round(time.Second).UTC()}
	if err := d.SavePending(p); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(d.Path, PendingFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pending enrolment file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	got, err := d.LoadPending()
	if err != nil {
		t.Fatal(err)
	}
	if !got.Key.Equal(key) || got.ChallengeID != "c1" || string(got.CSR) != string(csr) || !got.ExpiresAt.Equal(p.ExpiresAt) || !got.Recovery || got.ConnectorID != "conn-1" {
		t.Errorf("LoadPending = %+v, want %+v", got, p)
	}
	b, _ := os.ReadFile(filepath.Join(d.Path, PendingFileName))
	b[len(b)/2] ^= 0x01
	os.WriteFile(filepath.Join(d.Path, PendingFileName), b, 0o600)
	if _, err := d.LoadPending(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("LoadPending of a damaged file = %v, want ErrCorrupt", err)
	}
	for range 2 {
		if err := d.RemovePending(); err != nil {
			t.Errorf("RemovePending = %v", err)
		}
	}
	if _, err := d.LoadPending(); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadPending after RemovePending = %v", err)
	}
}
