package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/lab"
)

// fakeUpdater is the appliance's updater as the connector sees it: its API
// on a real Unix socket. It records install requests (checking the files
// the connector downloaded) and reports what the test sets.
type fakeUpdater struct {
	mu       sync.Mutex
	image    localapi.Image
	installs []localapi.InstallRequest
	files    map[string][]byte // what the connector put in the request's dir
}

func startFakeUpdater(t *testing.T, socket string, im localapi.Image) *fakeUpdater {
	t.Helper()
	u := &fakeUpdater{image: im}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		defer u.mu.Unlock()
		json.NewEncoder(w).Encode(u.image)
	})
	mux.HandleFunc("POST /v1/install", func(w http.ResponseWriter, r *http.Request) {
		var req localapi.InstallRequest
		json.NewDecoder(r.Body).Decode(&req)
		files := map[string][]byte{}
		entries, _ := os.ReadDir(req.Dir)
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(req.Dir, e.Name()))
			files[e.Name()] = b
		}
		u.mu.Lock()
		u.installs = append(u.installs, req)
		u.files = files
		u.image.Update = &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateInstalled, Reason: "written to slot B; rebooting at once", At: time.Now()}
		u.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return u
}

// fakeRelease writes what `make ova` puts into dist/ for an update, as far
// as the lab reads it: the bundle and a repository whose targets list it.
// (Signatures are the updater's business; the lab does not check them.)
func fakeRelease(t *testing.T, version string, size int) (bundle, repo string) {
	t.Helper()
	dir := t.TempDir()
	bundle = filepath.Join(dir, "vaultpam-connector-"+version+".update")
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	os.WriteFile(bundle, data, 0o644)
	repo = filepath.Join(dir, "update-repo")
	os.MkdirAll(repo, 0o755)
	targets := fmt.Sprintf(`{"signed":{"_type":"targets","version":1,"targets":{%q:{"length":%d,"hashes":{"sha256":"00"},"custom":{"version":%q,"manifest_sha256":"11"}}}},"signatures":[]}`,
		filepath.Base(bundle), size, version)
	for name, body := range map[string]string{"1.root.json": `{"signed":{"_type":"root"}}`, "2.root.json": `{"signed":{"_type":"root","version":2}}`,
		"timestamp.json": `{"signed":{"_type":"timestamp"}}`, "snapshot.json": `{"signed":{"_type":"snapshot"}}`, "targets.json": targets} {
		os.WriteFile(filepath.Join(repo, name), []byte(body), 0o644)
	}
	return bundle, repo
}

// TestUpdateOfferReachesTheUpdater: the lab offers an update on the
// tunnel; the connector downloads the metadata and the 3 MiB bundle over
// HTTPS with its client certificate into the data dir, hands them to the
// updater, and its heartbeats carry the running image version and the
// update's state to the lab.
func TestUpdateOfferReachesTheUpdater(t *testing.T) {
	cp := lab.NewTest(t, lab.WithHeartbeat(200*time.Millisecond))
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\n"), 0o644)
	sock := filepath.Join(dir, "c.sock")
	upSock := filepath.Join(dir, "update.sock")
	up := startFakeUpdater(t, upSock, localapi.Image{Version: "0.1.0", Slot: "A"})
	data := filepath.Join(dir, "data")
	getenv, unset := mapEnv(map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": data, "PAM_AGENT_SOCKET": sock,
		"PAM_ENROLMENT_TOKEN": protocol.FormatToken(tok), envUpdaterSocket: upSock})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuf
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, Env{Stdout: io.Discard, Stderr: &stderr, Args: []string{"run"}, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
	}()
	defer func() { cancel(); <-done }()
	c := localapi.NewClient(sock)
	var id string
	waitUntil(t, "online with the image version in the status", func() bool {
		st, err := c.Status(context.Background())
		id = st.ConnectorID
		return err == nil && st.State == state.Online.String() && st.Image != nil && st.Image.Version == "0.1.0"
	})
	waitUntil(t, "the lab shows the running image version", func() bool {
		conn, ok := cp.Authority.Connector(id)
		return ok && conn.Version == "0.1.0"
	})

	bundle, repo := fakeRelease(t, "0.2.0", 3<<20)
	if _, err := cp.Lab.OfferUpdate(id, bundle, repo); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the updater got the install request", func() bool {
		up.mu.Lock()
		defer up.mu.Unlock()
		return len(up.installs) == 1
	})
	up.mu.Lock()
	req, files := up.installs[0], up.files
	up.mu.Unlock()
	if req.Source != "control_plane" || req.Target != filepath.Base(bundle) || !strings.HasPrefix(req.Dir, filepath.Join(data, "update", "incoming")) {
		t.Errorf("install request = %+v", req)
	}
	want, _ := os.ReadFile(bundle)
	if got := files[filepath.Base(bundle)]; string(got) != string(want) {
		t.Errorf("downloaded bundle: %d bytes, want the %d the lab served", len(got), len(want))
	}
	for _, n := range []string{"1.root.json", "2.root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		b, _ := os.ReadFile(filepath.Join(repo, n))
		if string(files[n]) != string(b) {
			t.Errorf("metadata %s not downloaded as served", n)
		}
	}
	waitUntil(t, "the lab shows the update installed", func() bool {
		conn, _ := cp.Authority.Connector(id)
		return conn.Update != nil && conn.Update.Version == "0.2.0" && conn.Update.State == localapi.UpdateInstalled
	})
	// The offer repeats after a reconnect; the connector takes it once.
	cp.Server.Disconnect(id)
	waitUntil(t, "online again", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && st.State == state.Online.String()
	})
	time.Sleep(500 * time.Millisecond)
	up.mu.Lock()
	n := len(up.installs)
	up.mu.Unlock()
	if n != 1 {
		t.Errorf("the updater got %d install requests after a reconnect, want 1", n)
	}
	// A finished update takes the offer down.
	up.mu.Lock()
	up.image = localapi.Image{Version: "0.2.0", Slot: "B", Update: &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateSucceeded, At: time.Now()}}
	up.mu.Unlock()
	waitUntil(t, "the lab shows succeeded and 0.2.0 running, and no standing offer", func() bool {
		conn, _ := cp.Authority.Connector(id)
		return conn.Version == "0.2.0" && conn.Update != nil && conn.Update.State == localapi.UpdateSucceeded && cp.Authority.StandingOffer(id) == nil
	})
}

// TestUpdateOfferWithoutUpdater: a connector with no updater (a container,
// a package) reports the offer failed, saying why.
func TestUpdateOfferWithoutUpdater(t *testing.T) {
	cp := lab.NewTest(t, lab.WithHeartbeat(200*time.Millisecond))
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\n"), 0o644)
	sock := filepath.Join(dir, "c.sock")
	getenv, unset := mapEnv(map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": filepath.Join(dir, "data"), "PAM_AGENT_SOCKET": sock,
		"PAM_ENROLMENT_TOKEN": protocol.FormatToken(tok), envUpdaterSocket: filepath.Join(dir, "none.sock")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, Env{Stdout: io.Discard, Stderr: io.Discard, Args: []string{"run"}, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
	}()
	defer func() { cancel(); <-done }()
	c := localapi.NewClient(sock)
	var id string
	waitUntil(t, "online", func() bool {
		st, err := c.Status(context.Background())
		id = st.ConnectorID
		return err == nil && st.State == state.Online.String()
	})
	bundle, repo := fakeRelease(t, "0.2.0", 1000)
	if _, err := cp.Lab.OfferUpdate(id, bundle, repo); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the lab shows the offer failed with the reason", func() bool {
		conn, _ := cp.Authority.Connector(id)
		return conn.Update != nil && conn.Update.State == localapi.UpdateFailed && strings.Contains(conn.Update.Reason, "does not run on the VaultPAM appliance")
	})
	if st, _ := c.Status(context.Background()); st.Image != nil {
		t.Errorf("status has an image %+v without an updater", st.Image)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDrainForUpdateReboot: the updater asks the connector to drain before
// it reboots into an update. New sessions are refused at once, the open one
// runs until the grace period is over and then ends with reason
// update_reboot, and the connector stays Draining (it does not exit, so
// systemd does not start a fresh one into the reboot). The echo target is
// on loopback, which only an allowed_targets entry naming it allows.
func TestDrainForUpdateReboot(t *testing.T) {
	cp := lab.NewTest(t, lab.WithHeartbeat(200*time.Millisecond))
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfg, []byte("control_plane_url: "+cp.URL()+"\ncontrol_plane_ca_file: "+cp.CAFile+"\nconnector_name: dc1\nallowed_targets: [\"127.0.0.1\"]\n"), 0o644)
	sock := filepath.Join(dir, "c.sock")
	getenv, unset := mapEnv(map[string]string{"PAM_AGENT_CONFIG": cfg, "PAM_AGENT_DATA_DIR": filepath.Join(dir, "data"), "PAM_AGENT_SOCKET": sock,
		"PAM_ENROLMENT_TOKEN": protocol.FormatToken(tok), envUpdaterSocket: filepath.Join(dir, "none.sock")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, Env{Stdout: io.Discard, Stderr: io.Discard, Args: []string{"run"}, Getenv: getenv, Unsetenv: unset, Notify: func(string) {}})
	}()
	c := localapi.NewClient(sock)
	var id string
	waitUntil(t, "online", func() bool {
		st, err := c.Status(context.Background())
		id = st.ConnectorID
		return err == nil && st.State == state.Online.String()
	})
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			conn, err := echo.Accept()
			if err != nil {
				return
			}
			go io.Copy(conn, conn)
		}
	}()
	if err := cp.Authority.AddResource(lab.Resource{Name: "echo", Address: echo.Addr().String(), Connector: id}); err != nil {
		t.Fatal(err)
	}
	s, err := cp.Lab.Connect(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Drain(context.Background(), localapi.DrainRequest{Reason: string(protocol.ReasonUpdateReboot), Grace: localapi.Duration(time.Second)}); err != nil {
		t.Fatalf("Drain = %v", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("Drain returned after %v, before the grace period was over with a session open", took)
	}
	select {
	case <-s.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the open session was not ended after the grace period")
	}
	// The connector's report of the end (the caller may see the tunnel's
	// close first: that race is the broker's, see connector/tunnel's
	// TestDrainGraceExpires).
	waitUntil(t, "the connector reports the session ended with update_reboot", func() bool {
		for _, e := range cp.Lab.SessionEnds(s.ID) {
			if e.By == "connector" && e.Reason == string(protocol.ReasonUpdateReboot) {
				return true
			}
		}
		return false
	})
	if _, err := cp.Lab.Connect(context.Background(), "echo"); err == nil {
		t.Error("a new session was accepted after the drain")
	}
	st, err := c.Status(context.Background())
	if err != nil || st.State != state.Draining.String() || !strings.Contains(st.Reason, "update") {
		t.Errorf("after the drain: %+v (%v), want draining for the update", st, err)
	}
	select {
	case code := <-done:
		t.Fatalf("the connector exited (%d) after a drain for a reboot; it must wait to be stopped", code)
	case <-time.After(time.Second):
	}
	if err := c.Drain(context.Background(), localapi.DrainRequest{Reason: "whatever"}); err == nil {
		t.Error("a drain with another reason was accepted")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit after SIGTERM-like stop = %d, want 0", code)
	}
}
