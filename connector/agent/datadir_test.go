package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

var enospc = &fs.PathError{Op: "write", Path: "/data/.enrolment.json.tmp-1", Err: syscall.ENOSPC}

// A re-enrolment on a full data directory says the data directory is full
// (not "check the network"), before the token is used: the same token
// works once there is space again.
func TestReenrolOnAFullDataDirectory(t *testing.T) {
	cp := lab.NewTest(t)
	store := &identity.Mem{}
	r := launch(t, Options{Config: config.Config{ControlPlaneURL: cp.URL(), ConnectorName: "dc1"}, Store: store, Mode: durable, DataDir: "/data",
		Enroller: &enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool}, Token: newToken(t, cp)})
	for tr := r.waitFor(t, state.Connecting); !strings.Contains(tr.Reason, "identity accepted"); tr = r.waitFor(t, state.Connecting) {
	}
	id := r.Status().ConnectorID
	rec, _ := cp.Authority.CreateRecoveryToken(id, 0)

	store.SetErrors(enospc, enospc)
	err := r.submit(t, rec)
	var le *localapi.Error
	if !errors.As(err, &le) || le.Code != "data_dir_full" || !strings.Contains(le.Message, "the data directory /data is full") || !strings.Contains(le.Hint, "free space") {
		t.Fatalf("re-enrolment on a full disk = %v (%+v); want data_dir_full saying the data directory is full", err, le)
	}
	if strings.Contains(le.Hint, "network") {
		t.Errorf("hint %q blames the network", le.Hint)
	}
	store.SetErrors(nil, nil)
	if err := r.submit(t, rec); err != nil {
		t.Fatalf("the same token once there is space = %v; want it accepted (it was never used)", err)
	}
	for tr := r.waitFor(t, state.Connecting); !strings.Contains(tr.Reason, "re-enrolled as "+id); tr = r.waitFor(t, state.Connecting) {
	}
}

// A full disk at the very moment the issued identity is stored: the
// status says the data directory is full, the enrolment is kept and
// finished as soon as there is space.
func TestIdentitySaveOnAFullDataDirectory(t *testing.T) {
	cp := lab.NewTest(t)
	store := &identity.Mem{}
	store.SetErrors(enospc, nil)
	r := launch(t, Options{Config: config.Config{ControlPlaneURL: cp.URL(), ConnectorName: "dc1"}, Store: store, Mode: durable, DataDir: "/data",
		Enroller: &enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool}, Token: newToken(t, cp)})
	var tr Transition
	for tr = r.waitFor(t, state.Enrolling); !strings.Contains(tr.Reason, "cannot be stored"); tr = r.waitFor(t, state.Enrolling) {
	}
	if !strings.Contains(tr.Reason, "the data directory /data is full") || !strings.Contains(r.Status().Hint, "free space") {
		t.Errorf("reason %q hint %q; want the data directory full", tr.Reason, r.Status().Hint)
	}
	store.SetErrors(nil, nil)
	r.waitFor(t, state.Connecting)
	if _, err := store.Load(); err != nil || len(cp.Authority.Connectors()) != 1 {
		t.Errorf("after space came back: identity %v, %d connectors", err, len(cp.Authority.Connectors()))
	}
}

// The same on a real, small tmpfs that is full: the enrolment stops before
// the token is used, says why, and the token works once there is room.
func TestEnrolOnAFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("mounting a small tmpfs needs root (and is skipped by -short, as in make unit)")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	filler := filepath.Join(dir, "filler")
	f, _ := os.Create(filler)
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()
	cp := lab.NewTest(t)
	tok := newToken(t, cp)
	r := launch(t, Options{Config: config.Config{ControlPlaneURL: cp.URL(), ConnectorName: "dc1"}, Store: &identity.Dir{Path: dir}, Mode: durable, DataDir: dir,
		Enroller: &enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool}, Token: tok})
	tr := r.waitFor(t, state.AwaitingToken)
	if !strings.Contains(tr.Reason, "the data directory "+dir+" is full") || !strings.Contains(tr.Reason, "the token was not used") || !strings.Contains(r.Status().Hint, "free space") {
		t.Errorf("reason %q hint %q; want the data directory full and the token unused", tr.Reason, r.Status().Hint)
	}
	os.Remove(filler)
	if err := r.submit(t, tok); err != nil {
		t.Fatalf("the same token after freeing space = %v", err)
	}
	r.waitFor(t, state.Connecting)
}
