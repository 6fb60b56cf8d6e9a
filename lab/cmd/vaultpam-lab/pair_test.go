package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/lab"
)

// connectorClient posts pairing requests as a connector does.
func connectorClient(t *testing.T, dir string) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func postJSON(t *testing.T, hc *http.Client, url string, in, out any) int {
	t.Helper()
	b, _ := json.Marshal(in)
	resp, err := hc.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(out)
	return resp.StatusCode
}

func TestPairCommandsThroughServe(t *testing.T) {
	dir := t.TempDir()
	url := serveLab(t, dir, "--public-url", "https://lab.example.test:8443/")
	fi, err := os.Stat(filepath.Join(dir, lab.AdminPasswordFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin-password after serve: %v, %v; want a 0600 file", fi, err)
	}
	out, errs, code := runLab(t, "admin-password", "--state", dir)
	want, _ := lab.ReadAdminPassword(dir)
	if code != 0 || strings.TrimSpace(out) != want || len(want) != 23 {
		t.Errorf("admin-password = %q (%d) %s; want the 23-character password in the file", out, code, errs)
	}

	hc := connectorClient(t, dir)
	var ps protocol.PairStart
	if st := postJSON(t, hc, url+protocol.PairStartPath, protocol.PairStartRequest{Name: "dc1", Hostname: "vaultpam-3", Addresses: []string{"198.51.100.3"}, ImageVersion: "0.1.0"}, &ps); st != 200 {
		t.Fatalf("pair start = %d", st)
	}
	if !strings.HasPrefix(ps.VerificationURIComplete, "https://lab.example.test:8443/pair?code=") {
		t.Errorf("verification_uri_complete = %q, want it on --public-url", ps.VerificationURIComplete)
	}
	out, _, _ = runLab(t, "pair", "list", "--state", dir)
	if !strings.Contains(out, protocol.FormatUserCode(ps.UserCode)) || !strings.Contains(out, "vaultpam-3") || !strings.Contains(out, "pending") {
		t.Errorf("pair list:\n%s", out)
	}
	wrong := ps.UserCode[:7] + "Z"
	if ps.UserCode[7] == 'Z' {
		wrong = ps.UserCode[:7] + "Y"
	}
	if _, errs, code := runLab(t, "pair", "approve", "--state", dir, "--code", wrong); code != 1 || !strings.Contains(errs, "typo") {
		t.Errorf("approve with a wrong code: exit %d\n%s", code, errs)
	}
	out, errs, code = runLab(t, "pair", "approve", "--state", dir, "--code", strings.ToLower(protocol.FormatUserCode(ps.UserCode)), "--name", "dc1-cli")
	if code != 0 || !strings.Contains(out, "approved "+protocol.FormatUserCode(ps.UserCode)+" as dc1-cli") {
		t.Fatalf("pair approve = %q (%d) %s", out, code, errs)
	}
	var res protocol.PairResult
	if st := postJSON(t, hc, url+protocol.PairPollPath, protocol.PairPollRequest{DeviceCode: ps.DeviceCode}, &res); st != 200 || res.Name != "dc1-cli" {
		t.Fatalf("poll = %d %+v", st, res.Name)
	}
	pool := hc.Transport.(*http.Transport).TLSClientConfig.RootCAs
	id, err := (&enrol.Client{URL: url, RootCAs: pool, Name: "dc1"}).Enrol(context.Background(), res.Token)
	if err != nil {
		t.Fatalf("enrolling with the pairing's token: %v", err)
	}
	out, _, _ = runLab(t, "pair", "list", "--state", dir, "--json")
	var list []lab.Pairing
	if json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Enrolled != id.ConnectorID {
		t.Errorf("pair list --json = %s, want the pairing that enrolled %s", out, id.ConnectorID)
	}
	if strings.Contains(out, ps.DeviceCode) || strings.Contains(out, res.Token) {
		t.Error("pair list shows a secret")
	}

	var deny protocol.PairStart
	postJSON(t, hc, url+protocol.PairStartPath, protocol.PairStartRequest{Name: "dc2"}, &deny)
	if out, errs, code := runLab(t, "pair", "deny", "--state", dir, "--code", deny.UserCode); code != 0 || !strings.Contains(out, "denied") {
		t.Fatalf("pair deny = %q (%d) %s", out, code, errs)
	}
	var e protocol.ErrorResponse
	if st := postJSON(t, hc, url+protocol.PairPollPath, protocol.PairPollRequest{DeviceCode: deny.DeviceCode}, &e); st != 400 || e.Code != protocol.CodePairDenied {
		t.Errorf("poll after deny = %d %s, want 400 access_denied", st, e.Code)
	}
	if _, errs, code := runLab(t, "pair", "approve", "--state", dir, "--code", deny.UserCode); code != 1 || !strings.Contains(errs, "used already") {
		t.Errorf("approving a denied code: exit %d\n%s", code, errs)
	}
}
