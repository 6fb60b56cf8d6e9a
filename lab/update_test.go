package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
)

func TestOfferUpdateRefusals(t *testing.T) {
	ts := NewTest(t)
	a := ts.Authority
	a.mu.Lock()
	a.st.Connectors = append(a.st.Connectors, &Connector{ID: "conn-1", Name: "dc1", Status: StatusOnline})
	a.mu.Unlock()
	dir := t.TempDir()
	bundle := filepath.Join(dir, "vaultpam-connector-0.2.0.update")
	os.WriteFile(bundle, make([]byte, 100), 0o644)
	repo := filepath.Join(dir, "update-repo")
	os.MkdirAll(repo, 0o755)
	write := func(targets string) {
		for n, b := range map[string]string{"1.root.json": "{}", "timestamp.json": "{}", "snapshot.json": "{}", "targets.json": targets} {
			os.WriteFile(filepath.Join(repo, n), []byte(b), 0o644)
		}
	}
	write(`{"signed":{"targets":{"other.update":{"length":100,"custom":{"version":"0.2.0"}}}}}`)
	if _, err := a.OfferUpdate("conn-1", bundle, ""); err == nil || !strings.Contains(err.Error(), "do not list") {
		t.Errorf("bundle not listed: %v", err)
	}
	write(`{"signed":{"targets":{"vaultpam-connector-0.2.0.update":{"length":99,"custom":{"version":"0.2.0"}}}}}`)
	if _, err := a.OfferUpdate("conn-1", bundle, ""); err == nil || !strings.Contains(err.Error(), "not the bundle it lists") {
		t.Errorf("wrong size: %v", err)
	}
	write(`{"signed":{"targets":{"vaultpam-connector-0.2.0.update":{"length":100,"custom":{"version":"0.2.0"}}}}}`)
	if _, err := a.OfferUpdate("conn-9", bundle, ""); err == nil || !strings.Contains(err.Error(), "no connector") {
		t.Errorf("unknown connector: %v", err)
	}
	o, err := a.OfferUpdate("conn-1", bundle, "")
	if err != nil {
		t.Fatal(err)
	}
	w := a.StandingOffer("conn-1")
	if w == nil || w.ID != o.ID || w.Version != "0.2.0" || w.Bundle.Length != 100 || len(w.Metadata) != 4 || w.Metadata[0].Name != "1.root.json" {
		t.Fatalf("standing offer = %+v", w)
	}
	// Reports that do not end the update keep the offer; an end takes it down.
	a.UpdateReported("conn-1", "0.1.0", &protocol.UpdateReport{OfferID: o.ID, Version: "0.2.0", State: localapi.UpdateDownloading})
	if a.StandingOffer("conn-1") == nil {
		t.Error("offer taken down while downloading")
	}
	a.UpdateReported("conn-1", "0.1.0", &protocol.UpdateReport{OfferID: o.ID, Version: "0.2.0", State: localapi.UpdateRolledBack, Reason: "not online"})
	if a.StandingOffer("conn-1") != nil {
		t.Error("offer still standing after rolled_back")
	}
	c, _ := a.Connector("conn-1")
	if c.Version != "0.1.0" || c.Update == nil || c.Update.State != localapi.UpdateRolledBack || c.Update.Reason != "not online" {
		t.Errorf("connector record = %+v %+v", c, c.Update)
	}
}
