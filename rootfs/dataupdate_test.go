package rootfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestUpdateDirCannotBeReplaced runs the overlay's data-update-dir (what
// data-mount does at boot) on a /data that belongs to another user, as on
// the appliance (/data is vaultpam's, 0700), in a private mount namespace,
// then tries as that user what the connector's user could do before:
// rename /data/update away, remove it, put its own in its place. Each must
// fail (a mount point: EBUSY). What that user had put at /data/update
// before (its own directory with a trust anchor, or a symbolic link) is
// moved aside, never followed. Fails without data-update-dir: the rename
// worked and the updater trusted the records in the replacement.
func TestUpdateDirCannotBeReplaced(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts, a second user)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	script, err := filepath.Abs("overlay/usr/libexec/vaultpam/data-update-dir")
	if err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, data string)
	}{
		{"fresh", func(t *testing.T, data string) {}},
		{"root's already", func(t *testing.T, data string) {
			os.MkdirAll(filepath.Join(data, "update", "tuf"), 0o755)
			os.WriteFile(filepath.Join(data, "update", "failed.json"), []byte("[]\n"), 0o600)
		}},
		{"planted by the connector's user", func(t *testing.T, data string) {
			os.MkdirAll(filepath.Join(data, "update", "tuf"), 0o755)
			os.WriteFile(filepath.Join(data, "update", "tuf", "root.json"), []byte("{}"), 0o644)
			exec.Command("chown", "-R", "65534:65534", filepath.Join(data, "update")).Run()
		}},
		{"a symbolic link", func(t *testing.T, data string) {
			victim := filepath.Join(filepath.Dir(data), "victim")
			os.Mkdir(victim, 0o700)
			os.Symlink(victim, filepath.Join(data, "update"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
				os.Chmod(d, 0o755)
			}
			data := filepath.Join(base, "data")
			os.Mkdir(data, 0o700)
			tc.prepare(t, data)
			os.Chown(data, nobody, nobody)
			asNobody := `su -s /bin/sh nobody -c "` +
				`mv -T $D/update $D/moved 2>&1 && echo RENAMED; ` +
				`rmdir $D/update 2>&1 && echo REMOVED; ` +
				`mkdir -p $D/mine && mv -T $D/mine $D/update 2>&1 && echo REPLACED; ` +
				`mkdir $D/update/tuf2 2>&1 && echo WROTE; true"`
			cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
				`set -e; "$S" "$D"; mountpoint "$D/update"; stat -c 'owner %u mode %a' "$D/update"; `+asNobody)
			cmd.Env = append(os.Environ(), "S="+script, "D="+data)
			out, err := cmd.CombinedOutput()
			t.Logf("%s", out)
			if err != nil {
				t.Fatalf("data-update-dir: %v", err)
			}
			s := string(out)
			if !strings.Contains(s, "is a mountpoint") || !strings.Contains(s, "owner 0 mode 755") {
				t.Errorf("after data-update-dir, %s/update is not root's 0755 mount point", data)
			}
			for _, bad := range []string{"RENAMED", "REMOVED", "REPLACED", "WROTE"} {
				if strings.Contains(s, bad) {
					t.Errorf("the connector's user could still do this to /data/update: %s", bad)
				}
			}
			if tc.name == "a symbolic link" {
				fi, _ := os.Stat(filepath.Join(base, "victim"))
				if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o700 || st.Uid != 0 {
					t.Errorf("the link's target was changed: %v uid %d", fi.Mode(), st.Uid)
				}
			}
			if tc.name == "planted by the connector's user" || tc.name == "a symbolic link" {
				if m, _ := filepath.Glob(filepath.Join(data, "update.untrusted-*")); len(m) != 1 {
					t.Errorf("what was at /data/update was not moved aside: %v", m)
				}
				if _, err := os.Stat(filepath.Join(data, "update", "tuf", "root.json")); err == nil {
					t.Errorf("the planted tuf/root.json is still in /data/update")
				}
			}
			if tc.name == "root's already" {
				if _, err := os.Stat(filepath.Join(data, "update", "failed.json")); err != nil {
					t.Errorf("root's own records were not kept: %v", err)
				}
			}
		})
	}
}
