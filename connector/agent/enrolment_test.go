package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

// A pending enrolment the control plane never took (its challenge was
// lost with a control plane restart, the token not consumed) is dropped at
// the next start; the connector says the token was not used, and the
// token given at start then enrols it.
func TestResumeOfAChallengeTheControlPlaneLost(t *testing.T) {
	dir := t.TempDir()
	cp := lab.NewTestAt(t, dir)
	tok := newToken(t, cp)
	store := &identity.Mem{}
	p, err := (&enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool}).Start(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	store.SavePending(p)
	addr := cp.Addr().String()
	cp.Stop()
	cp = lab.NewTestAt(t, dir, lab.WithListen(addr)) // challenges live in memory: gone

	r := launch(t, Options{
		Config: config.Config{ControlPlaneURL: cp.URL(), ConnectorName: "dc1"}, Store: store, Mode: durable,
		Enroller: &enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool}, Token: tok,
	})
	for tr := r.waitFor(t, state.AwaitingToken); !strings.Contains(tr.Reason, "token was not used"); tr = r.waitFor(t, state.AwaitingToken) {
	}
	r.waitFor(t, state.Connecting)
	if _, err := store.LoadPending(); err == nil {
		t.Error("the dropped pending enrolment is still stored")
	}
	if n := len(cp.Authority.Connectors()); n != 1 || r.Status().ConnectorID == "" {
		t.Errorf("%d connectors, connector ID %q; want one, enrolled with the token given at start", n, r.Status().ConnectorID)
	}
}
