package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadWithin runs Load and fails the test if it does not return (a FIFO
// read would block forever).
func loadWithin(t *testing.T, path string, getenv func(string) string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := Load(path, getenv); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("Load(%s) hangs", path)
		return nil
	}
}

// Files the configuration names are size-limited regular files: a FIFO,
// /dev/zero, a directory or a huge file is a clear error, never a hang or
// an endless read.
func TestConfigNamedFilesAreBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pem")
	os.WriteFile(big, []byte("-----BEGIN CERTIFICATE-----\n"+strings.Repeat("A", 2<<20)), 0o644)
	for _, tc := range []struct {
		path, want string
	}{
		{fifo, "a named pipe (FIFO)"},
		{"/dev/zero", "a character device"},
		{dir, "a directory"},
		{big, "more than the 1 MiB allowed"},
	} {
		// as control_plane_ca_file
		err := loadWithin(t, "", env(map[string]string{EnvControlPlaneURL: "https://cp", EnvConnectorName: "a", EnvCAFile: tc.path}))
		if err == nil || !strings.Contains(err.Error(), "control_plane_ca_file: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("control_plane_ca_file %s: Load = %v, want %q", tc.path, err, tc.want)
		}
		if tc.path == big {
			continue
		}
		// as the config file itself
		err = loadWithin(t, tc.path, env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %s: Load = %v, want %q", tc.path, err, tc.want)
		}
	}
	huge := filepath.Join(dir, "huge.yaml")
	os.WriteFile(huge, []byte("connector_name: a\n"+strings.Repeat("# padding\n", 30000)), 0o644)
	if err := loadWithin(t, huge, env(nil)); err == nil || !strings.Contains(err.Error(), "more than the 256 KiB allowed") {
		t.Errorf("Load(huge config) = %v", err)
	}
}

// A second YAML document is refused, not ignored.
func TestSecondYAMLDocumentRefused(t *testing.T) {
	for _, body := range []string{
		"control_plane_url: https://cp\nconnector_name: a\n---\nallowed_targets: [\"10.0.0.0/8\"]\n",
		"---\ncontrol_plane_url: https://cp\nconnector_name: a\n---\n",
		"control_plane_url: https://cp\nconnector_name: a\n...\n---\nproxy_url: http://p:3128\n",
	} {
		_, err := Load(writeConfig(t, body), env(nil))
		if err == nil || !strings.Contains(err.Error(), "more than one YAML document") {
			t.Errorf("Load(%q) = %v, want the second document refused", body, err)
		}
	}
	if _, err := Load(writeConfig(t, "---\ncontrol_plane_url: https://cp\nconnector_name: a\n"), env(nil)); err != nil {
		t.Errorf("Load(one document with ---) = %v", err)
	}
}
