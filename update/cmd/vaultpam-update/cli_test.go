package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/localapi"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), Env{Stdout: &out, Stderr: &errb, Args: args})
	return code, out.String(), errb.String()
}

// fakeUpdater serves the updater's API on a Unix socket: a fixed status
// and a refusal for every install.
func fakeUpdater(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "update.sock")
	l, err := localapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(localapi.Image{Version: "0.1.0", Slot: "A", Other: &localapi.SlotInfo{Slot: "B", Version: "0.2.0", State: "failed"},
			Update: &localapi.UpdateStatus{Version: "0.2.0", State: localapi.UpdateRolledBack, Reason: "connector not Online after 5m0s", Source: "control_plane"}})
	})
	mux.HandleFunc("POST /v1/install", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(localapi.ErrorBody{Code: localapi.UpdateCodeFailedOnce, Message: "refused before anything was written: 0.2.0 failed on this appliance", Hint: "a newer release will be offered"})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestStatus(t *testing.T) {
	sock := fakeUpdater(t)
	code, out, _ := run("status", "--socket", sock)
	if code != 0 || !strings.Contains(out, "image:    0.1.0 in slot A") || !strings.Contains(out, "update:   0.2.0 rolled_back (from control_plane)") ||
		!strings.Contains(out, "connector not Online after 5m0s") {
		t.Errorf("status = %d\n%s", code, out)
	}
	code, out, _ = run("status", "--json", "--socket", sock)
	var im localapi.Image
	if code != 0 || json.Unmarshal([]byte(out), &im) != nil || im.Update.State != "rolled_back" {
		t.Errorf("status --json = %d\n%s", code, out)
	}
}

func TestInstallRefusalShowsCodeAndHint(t *testing.T) {
	code, _, errs := run("install", "--socket", fakeUpdater(t), "--dir", "/data/update/incoming/x", "--target", "v.update")
	if code != exitError || !strings.Contains(errs, "code: update_failed_once") || !strings.Contains(errs, "hint: a newer release will be offered") {
		t.Errorf("install = %d\n%s", code, errs)
	}
}

func TestNoUpdaterRunning(t *testing.T) {
	code, _, errs := run("status", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != exitError || !strings.Contains(errs, "hint: is vaultpam-update.service running?") {
		t.Errorf("status = %d\n%s", code, errs)
	}
	if code, _, _ := run("frobnicate"); code != exitUsage {
		t.Errorf("unknown command = %d", code)
	}
}

func TestCmdlineDuration(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cmdline")
	os.WriteFile(p, []byte("root=/dev/mapper/vroot vaultpam.update_gate=90s panic=60\n"), 0o644)
	if d, ok := cmdlineDuration(p, "vaultpam.update_gate"); !ok || d.Seconds() != 90 {
		t.Errorf("cmdlineDuration = %v %v", d, ok)
	}
}

// TestUnits checks the units keep what the appliance relies on, and that
// systemd itself accepts them and rates the daemon's sandbox.
func TestUnits(t *testing.T) {
	for file, wants := range map[string][]string{
		"vaultpam-update.service": {"ExecStart=/usr/bin/vaultpam-update serve", "ProtectSystem=strict",
			"ReadWritePaths=-/data/update /efi -/sys/firmware/efi/efivars", "RuntimeDirectory=vaultpam-update", "RuntimeDirectoryMode=0750", "DevicePolicy=closed",
			"DeviceAllow=/dev/disk/by-partlabel/VPAM-ROOT-B rw", "RestrictAddressFamilies=AF_UNIX", "IPAddressDeny=any",
			"PrivateNetwork=yes", "NoNewPrivileges=yes", "WantedBy=multi-user.target"},
		"vaultpam-update-gate.service": {"ExecStart=/usr/bin/vaultpam-update gate", "Before=boot-complete.target systemd-bless-boot.service",
			"FailureAction=reboot", "Type=oneshot", "RemainAfterExit=yes", "TimeoutStartSec=6min", "ReadWritePaths=-/data/update /efi"},
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wants {
			if !strings.Contains(string(b), w+"\n") {
				t.Errorf("%s lacks %q", file, w)
			}
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	out, _ := exec.Command("systemd-analyze", "security", "--offline=yes", "vaultpam-update.service").CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for vaultpam-update.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.5 {
		t.Errorf("vaultpam-update.service exposure %.1f, want at most 2.5", level)
	}
	t.Logf("systemd-analyze security --offline: vaultpam-update.service exposure %s", m[1])
}

// TestNoBuildSideDependencies: the updater runs on the box; it must not
// link cloud SDKs, cosign, Packer or govmomi.
func TestNoBuildSideDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	bad := regexp.MustCompile(`(?m)^.*(cloud\.google\.com|aws|azure|cosign|hashicorp/packer|govmomi).*$`)
	if m := bad.FindAll(out, -1); len(m) > 0 {
		t.Errorf("vaultpam-update links build-side packages:\n%s", bytes.Join(m, []byte("\n")))
	}
}
