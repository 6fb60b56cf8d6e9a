package localapi

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/state"
)

type backend struct {
	st  Status
	err error
	got string
}

func (b *backend) Status() Status { return b.st }
func (b *backend) SubmitToken(_ context.Context, tok string) error {
	b.got = tok
	return b.err
}

func serve(t *testing.T, b Backend) *Client {
	t.Helper()
	p := filepath.Join(t.TempDir(), "run", "c.sock")
	l, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	srv := &http.Server{Handler: Handler(b)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return NewClient(p)
}

func TestStatusAndToken(t *testing.T) {
	b := &backend{st: Status{State: state.Online.String(), StateLabel: state.Online.Label(), HeartbeatInterval: Duration(10 * time.Second), ActiveSessions: 3}}
	c := serve(t, b)
	st, err := c.Status(context.Background())
	if err != nil || st.State != state.Online.String() || st.HeartbeatInterval != Duration(10*time.Second) || st.ActiveSessions != 3 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if err := c.SubmitToken(context.Background(), "K7Q2M-XW9HD-3RT5B-NPZ4C"); err != nil || b.got != "K7Q2M-XW9HD-3RT5B-NPZ4C" {
		t.Fatalf("SubmitToken = %v (got %q)", err, b.got)
	}
	b.err = &Error{Status: 409, Code: "token_used", Message: "used", Hint: "make a recovery token"}
	var e *Error
	if err := c.SubmitToken(context.Background(), "x"); !errors.As(err, &e) || e.Code != "token_used" || e.Hint == "" || e.Status != 409 {
		t.Fatalf("SubmitToken error = %#v", err)
	}
	b.err = errors.New("boom")
	if err := c.SubmitToken(context.Background(), "x"); !errors.As(err, &e) || e.Code != "internal" {
		t.Fatalf("SubmitToken plain error = %#v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.sock")
	l1, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	l1.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	l1.Close() // leaves the socket file behind, like a crash
	l2, err := Listen(p)
	if err != nil {
		t.Fatalf("Listen over a stale socket = %v", err)
	}
	l2.Close()
}

func TestLabels(t *testing.T) {
	if ModeLabel(ModeGuidedRecovery) != "Guided recovery" {
		t.Error("labels changed")
	}
}

// updaterBackend records what the connector would forward to the updater.
type updaterBackend struct {
	backend
	installs  []InstallRequest
	rollbacks int
}

func (b *updaterBackend) InstallUpdate(_ context.Context, r InstallRequest) error {
	b.installs = append(b.installs, r)
	return nil
}
func (b *updaterBackend) RollbackUpdate(context.Context, RollbackRequest) error {
	b.rollbacks++
	return nil
}

// TestOperatorRequestsAreNotRelayed: the connector's socket forwards a
// plain install to the updater, but never a downgrade's confirmation or a
// rollback (the updater would see the connector's uid on them): 403
// update_not_permitted, nothing forwarded. Before the fix both were
// forwarded.
func TestOperatorRequestsAreNotRelayed(t *testing.T) {
	b := &updaterBackend{}
	c := serve(t, b)
	ctx := context.Background()
	if err := c.InstallUpdate(ctx, InstallRequest{Source: "cdrom"}); err != nil || len(b.installs) != 1 {
		t.Fatalf("InstallUpdate(cdrom) = %v, forwarded %d", err, len(b.installs))
	}
	var e *Error
	if err := c.InstallUpdate(ctx, InstallRequest{Source: "cdrom", ConfirmDowngrade: true}); !errors.As(err, &e) || e.Status != 403 || e.Code != UpdateCodeNotPermitted {
		t.Errorf("InstallUpdate(confirm_downgrade) = %v, want 403 %s", err, UpdateCodeNotPermitted)
	}
	if err := c.RollbackUpdate(ctx, RollbackRequest{Confirm: true}); !errors.As(err, &e) || e.Status != 403 || e.Code != UpdateCodeNotPermitted {
		t.Errorf("RollbackUpdate = %v, want 403 %s", err, UpdateCodeNotPermitted)
	}
	if len(b.installs) != 1 || b.rollbacks != 0 {
		t.Errorf("forwarded installs %+v, rollbacks %d; want only the plain install", b.installs, b.rollbacks)
	}
}
