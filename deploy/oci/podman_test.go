package oci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/deploy/internal/shapetest"
)

// loadImage writes the archive and loads it with `podman load`.
func loadImage(t *testing.T, p *shapetest.Podman) string {
	t.Helper()
	c := testConfig(t)
	res, err := WriteArchive(c, filepath.Join(t.TempDir(), FileName(c.Version)))
	if err != nil {
		t.Fatal(err)
	}
	out := p.Must(t, "load", "-i", res.Path)
	if !strings.Contains(out, c.Ref()) {
		t.Fatalf("podman load said %q; want the image %s", out, c.Ref())
	}
	t.Logf("podman load: %s", out)
	return c.Ref()
}

// status reads the connector's status JSON through podman exec.
type status struct {
	State       string `json:"state"`
	Reason      string `json:"reason"`
	Mode        string `json:"mode"`
	ConnectorID string `json:"connector_id"`
	DataDurable bool   `json:"data_durable"`
}

func containerStatus(p *shapetest.Podman, name string) (status, string) {
	out, errb, err := p.Run("exec", name, BinaryPath, "status", "--json")
	var st status
	if err != nil {
		return st, errb
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, err.Error()
	}
	return st, st.State + " " + st.Reason
}

func waitState(t *testing.T, p *shapetest.Podman, name, state string) status {
	t.Helper()
	var st status
	shapetest.Eventually(t, 2*time.Minute, name+" "+state, func() (bool, string) {
		var s string
		st, s = containerStatus(p, name)
		if st.State == state {
			return true, ""
		}
		if running, _, _ := p.Run("inspect", "--format", "{{.State.Running}}", name); running == "false" {
			out, errb, _ := p.Run("logs", name)
			t.Fatalf("container %s stopped while waiting for %s:\n%s\n%s", name, state, out, errb)
		}
		return false, s
	})
	return st
}

func labStatus(t *testing.T, lab *shapetest.Lab, id string) string {
	for _, c := range lab.Connectors(t) {
		if c.ID == id {
			return c.Status
		}
	}
	return ""
}

// The image as non-root with a read-only root filesystem: the running
// connector's process (seen from the host) has UID 65532, its root mount is
// read-only, and it still serves its local API (on the tmpfs podman mounts
// at /run) and writes /data.
func TestPodmanNonRootReadOnly(t *testing.T) {
	p := shapetest.NewPodman(t)
	ref := loadImage(t, p)
	p.Must(t, "run", "-d", "--name", "ro", "--read-only", "--network", "none",
		"-e", "PAM_CONTROL_PLANE_URL=https://127.0.0.1:9", "-e", "PAM_CONNECTOR_NAME=ro-test", ref)
	st := waitState(t, p, "ro", "awaiting_token")
	if st.Mode != "autonomous_restart" || !st.DataDurable {
		t.Errorf("mode with the image's anonymous /data volume = %s durable=%v", st.Mode, st.DataDurable)
	}
	pid := p.Must(t, "inspect", "--format", "{{.State.Pid}}", "ro")
	procStatus, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(procStatus), "\n") {
		if strings.HasPrefix(l, "Uid:") || strings.HasPrefix(l, "Gid:") {
			f := strings.Fields(l)
			for _, id := range f[1:] {
				if id != "65532" {
					t.Errorf("connector process %s: %s; want 65532 everywhere", pid, l)
					break
				}
			}
		}
	}
	mounts, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	rootRO := false
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[4] == "/" {
			rootRO = strings.HasPrefix(f[5], "ro")
		}
	}
	if !rootRO {
		t.Errorf("the container's / is not mounted read-only:\n%s", mounts)
	}
	if out, _, err := p.Run("exec", "ro", BinaryPath, "status", "--check", "live"); err != nil || out != "live: Waiting for token" {
		t.Errorf("status --check live = %q, %v", out, err)
	}
	inspect := p.Must(t, "inspect", "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", "ro")
	t.Logf("container ro: pid %s, user/readonly %q, root mount read-only, local API answers", pid, inspect)
}

// Autonomous restart mode: a named volume at /data. Online, restarted:
// Online with the same ID and no new enrolment; a new container on the same
// volume: the same ID again. Configuration comes from a mounted file here.
func TestPodmanNamedVolume(t *testing.T) {
	p := shapetest.NewPodman(t)
	ref := loadImage(t, p)
	lab := shapetest.StartLab(t, time.Second)
	cfgDir := t.TempDir()
	os.WriteFile(filepath.Join(cfgDir, "connector.yaml"), []byte("control_plane_url: "+lab.URL+"\ncontrol_plane_ca_file: /config/ca.pem\nconnector_name: podman-vol\n"), 0o644)
	ca, _ := os.ReadFile(lab.CAFile)
	os.WriteFile(filepath.Join(cfgDir, "ca.pem"), ca, 0o644)
	p.Must(t, "volume", "create", "vaultpam-data")
	run := func(name string, token bool) {
		args := []string{"run", "-d", "--name", name, "--read-only", "--network", "host",
			"-v", "vaultpam-data:/data", "-v", cfgDir + ":/config:ro"}
		var env []string
		if token {
			args = append(args, "-e", "PAM_ENROLMENT_TOKEN")
			env = []string{"PAM_ENROLMENT_TOKEN=" + lab.Token(t, "podman-vol")}
		}
		if _, errb, err := p.RunEnv(env, "", append(args, ref)...); err != nil {
			t.Fatalf("podman run %s: %v\n%s", name, err, errb)
		}
	}
	run("c1", true)
	st := waitState(t, p, "c1", "online")
	id := st.ConnectorID
	if st.Mode != "autonomous_restart" || id == "" {
		t.Fatalf("online status = %+v; want autonomous_restart with an ID", st)
	}
	if s := labStatus(t, lab, id); s != "online" {
		t.Errorf("lab says %s is %q", id, s)
	}
	p.Must(t, "restart", "c1")
	st = waitState(t, p, "c1", "online")
	if st.ConnectorID != id {
		t.Errorf("after podman restart: connector %s, want %s", st.ConnectorID, id)
	}
	p.Must(t, "rm", "-f", "c1")
	run("c2", false)
	st = waitState(t, p, "c2", "online")
	if st.ConnectorID != id {
		t.Errorf("new container on the same volume: connector %s, want %s", st.ConnectorID, id)
	}
	if n := len(lab.Connectors(t)); n != 1 {
		t.Errorf("the lab has %d connectors; want 1 (no second enrolment)", n)
	}
	t.Logf("named volume: %s online, same ID after podman restart and after a new container", id)
}

// Guided recovery mode: /data on a tmpfs and configuration from the
// environment only. Online; restarted: the identity is gone, the token in
// the environment is used already, so needs_recovery; a recovery token
// typed through `podman exec -i … enrol` brings it back with the same ID.
func TestPodmanGuidedRecovery(t *testing.T) {
	p := shapetest.NewPodman(t)
	ref := loadImage(t, p)
	lab := shapetest.StartLab(t, time.Second)
	caDir := t.TempDir()
	ca, _ := os.ReadFile(lab.CAFile)
	os.WriteFile(filepath.Join(caDir, "ca.pem"), ca, 0o644)
	// U: podman hands the tmpfs to the container's user (65532); without
	// it podman copies the image's /data up with root as owner and the
	// connector cannot write its identity (docker: uid=65532 instead).
	if _, errb, err := p.RunEnv([]string{"PAM_ENROLMENT_TOKEN=" + lab.Token(t, "podman-tmpfs")}, "",
		"run", "-d", "--name", "g1", "--read-only", "--network", "host",
		"--tmpfs", "/data:rw,size=16m,mode=0700,U",
		"-v", caDir+":/ca:ro",
		"-e", "PAM_CONTROL_PLANE_URL="+lab.URL, "-e", "PAM_CONTROL_PLANE_CA_FILE=/ca/ca.pem", "-e", "PAM_CONNECTOR_NAME=podman-tmpfs",
		"-e", "PAM_ENROLMENT_TOKEN", ref); err != nil {
		t.Fatalf("podman run: %v\n%s", err, errb)
	}
	st := waitState(t, p, "g1", "online")
	id := st.ConnectorID
	if st.Mode != "guided_recovery" || st.DataDurable {
		t.Fatalf("status on tmpfs = %+v; want guided_recovery, not durable", st)
	}
	p.Must(t, "restart", "g1")
	st = waitState(t, p, "g1", "needs_recovery")
	t.Logf("after restart on tmpfs: %s (%s)", st.State, st.Reason)
	if st.ConnectorID != "" {
		t.Errorf("needs_recovery still shows connector %s", st.ConnectorID)
	}
	out, errb, err := p.RunStdin(lab.RecoveryToken(t, id)+"\n", "exec", "-i", "g1", BinaryPath, "enrol")
	if err != nil {
		t.Fatalf("enrol with the recovery token: %v\n%s\n%s", err, out, errb)
	}
	t.Logf("enrol:\n%s", out)
	st = waitState(t, p, "g1", "online")
	if st.ConnectorID != id {
		t.Errorf("recovered as %s, want %s", st.ConnectorID, id)
	}
	if s := labStatus(t, lab, id); s != "online" {
		t.Errorf("lab says %s is %q after recovery", id, s)
	}
}

// Both halves of the tarball load: the OCI layout (oci-archive:, what
// podman load and docker load ≥ 25 read) and Docker's manifest.json
// (docker-archive:, the format of docker save and older docker load). Both
// give the same image: the same config digest, the image ID.
func TestPodmanReadsOCIAndDockerArchive(t *testing.T) {
	p := shapetest.NewPodman(t)
	c := testConfig(t)
	res, err := WriteArchive(c, filepath.Join(t.TempDir(), FileName(c.Version)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := Image(c)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigName()
	for _, transport := range []string{"oci-archive:", "docker-archive:"} {
		id := p.Must(t, "pull", "-q", transport+res.Path)
		if !strings.HasPrefix(cfg.Hex, id) && id != cfg.Hex {
			t.Errorf("podman pull %s: image ID %s, want the config digest %s", transport, id, cfg.Hex)
		}
		p.Must(t, "rmi", "-f", id)
	}
}
