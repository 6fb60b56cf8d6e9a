//go:build vaultpam_fault_neveronline

package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/agent"
	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

// TestFaultNeverOnline: the test build enrols against a real (lab) control
// plane, has its identity accepted, then stays Offline with the test
// build's reason instead of going Online. Run by TestFaultBuildTag with
// -tags vaultpam_fault_neveronline.
func TestFaultNeverOnline(t *testing.T) {
	cp := lab.NewTest(t)
	cfg := config.Config{ControlPlaneURL: cp.URL(), ConnectorName: "dc1", DrainTimeout: config.Duration(time.Second)}
	tok, err := cp.Authority.CreateToken("dc1", 0)
	if err != nil {
		t.Fatal(err)
	}
	trs := make(chan agent.Transition, 100)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var ag *agent.Agent
	upd, err := newUpdates(cfg, cp.CAPool, nil, t.TempDir(), "", log, func() *identity.Identity { return ag.Identity() })
	if err != nil {
		t.Fatal(err)
	}
	ag, err = agent.New(agent.Options{
		Config:       cfg,
		Store:        &identity.Mem{},
		Mode:         identity.Mode{Name: identity.ModeAutonomousRestart, Durable: true, FSType: "0xef53"},
		Enroller:     &enrol.Client{URL: cp.URL(), RootCAs: cp.CAPool, Name: "dc1"},
		Updates:      upd,
		Link:         newLinkFactory(cfg, cp.CAPool, nil, log, upd, nil),
		Token:        tok,
		OnTransition: func(tr agent.Transition) { trs <- tr },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.After(time.Minute) // a hang, not a speed check
	for {
		select {
		case tr := <-trs:
			t.Logf("%s -> %s: %s", tr.From, tr.To, tr.Reason)
			if tr.To == state.Online {
				t.Fatal("the never-online test build went Online")
			}
			if tr.To == state.Reconnecting && tr.Reason == faultNeverOnline {
				st := ag.Status()
				if st.ConnectorID == "" || !strings.Contains(st.Reason, "vaultpam_fault_neveronline") {
					t.Errorf("status = %+v, want an enrolled connector with the test build's reason", st)
				}
				for _, c := range cp.Authority.Connectors() {
					if c.Status == "online" {
						t.Errorf("the control plane lists %s online", c.ID)
					}
				}
				return
			}
		case <-deadline:
			t.Fatal("no transition to reconnecting with the test build's reason")
		}
	}
}
