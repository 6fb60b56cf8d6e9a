package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFaultBuildTag: the never-online fault exists only in a binary built
// with -tags vaultpam_fault_neveronline (make build GOTAGS=…): the release
// build, made the way `make build` makes it, carries neither the tag nor
// the fault's code; the tagged build carries both, and behaves as the
// fault says (TestFaultNeverOnline, run here with the tag).
func TestFaultBuildTag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the connector twice and runs the tagged test (-short)")
	}
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	dir := t.TempDir()
	build := func(tags string) (bin []byte, buildInfo string) {
		t.Helper()
		out := filepath.Join(dir, "vaultpam-connector-"+strings.ReplaceAll(tags+"release", ",", "-"))
		cmd := exec.Command(goBin, "build", "-trimpath", "-tags", tags, "-ldflags", "-s -w", "-o", out, ".")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build -tags %q: %v\n%s", tags, err, b)
		}
		info, err := exec.Command(goBin, "version", "-m", out).CombinedOutput()
		if err != nil {
			t.Fatalf("go version -m: %v\n%s", err, info)
		}
		bin, err = os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return bin, string(info)
	}
	marker := []byte("this connector never goes online")

	release, info := build("")
	if strings.Contains(info, "vaultpam_fault_neveronline") || bytes.Contains(release, marker) || bytes.Contains(release, []byte("neverOnlineLink")) {
		t.Errorf("the release build carries the fault (tag in build info: %v, reason string: %v)",
			strings.Contains(info, "vaultpam_fault_neveronline"), bytes.Contains(release, marker))
	}
	fault, info := build("vaultpam_fault_neveronline")
	if !strings.Contains(info, "-tags=vaultpam_fault_neveronline") || !bytes.Contains(fault, marker) {
		t.Errorf("the fault build lacks the tag or the fault:\n%s", info)
	}

	cmd := exec.Command(goBin, "test", "-count=1", "-tags", "vaultpam_fault_neveronline", "-run", "^TestFaultNeverOnline$", ".")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Errorf("go test -tags vaultpam_fault_neveronline: %v\n%s", err, out)
	}
}
