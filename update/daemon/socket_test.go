package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/cdrom"
)

// TestSocketInTheUpdatersOwnDirectory: the socket and the CD-ROM's mount
// point live in the updater's own runtime directory, not in the
// connector's /run/vaultpam. Before the fix the updater created its socket
// in a directory the connector's user owned and chmod/chowned it by path:
// that user swapped the socket for a symbolic link and a root-owned file
// of its choice became 0660, group vaultpam.
func TestSocketInTheUpdatersOwnDirectory(t *testing.T) {
	cfg := DefaultConfig()
	if filepath.Dir(cfg.Socket) != "/run/vaultpam-update" || cfg.Socket != localapi.UpdaterSocket {
		t.Errorf("socket %s (localapi.UpdaterSocket %s), want it in /run/vaultpam-update", cfg.Socket, localapi.UpdaterSocket)
	}
	if filepath.Dir(cfg.CDROMMount) != "/run/vaultpam-update" || cfg.CDROMMount != cdrom.DefaultMountDir {
		t.Errorf("CD-ROM mount point %s, want it in /run/vaultpam-update", cfg.CDROMMount)
	}
	if os.Geteuid() != 0 {
		t.Skip("the rest needs root (a second user)")
	}
	const nobody = 65534
	base := t.TempDir()
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}

	// A directory another user owns (the connector's /run/vaultpam) is
	// refused.
	theirs := filepath.Join(base, "run-vaultpam")
	os.Mkdir(theirs, 0o750)
	os.Chown(theirs, nobody, nobody)
	if ln, _, err := listenUnix(filepath.Join(theirs, "update.sock"), nobody); err == nil {
		ln.Close()
		t.Errorf("listened in a directory of uid %d", nobody)
	}

	// A symbolic link in the socket's place is refused, its target untouched.
	victim := filepath.Join(base, "victim")
	os.WriteFile(victim, []byte("root's"), 0o600)
	own := filepath.Join(base, "run-vaultpam-update")
	os.Mkdir(own, 0o755)
	os.Symlink(victim, filepath.Join(own, "update.sock"))
	if ln, _, err := listenUnix(filepath.Join(own, "update.sock"), nobody); err == nil {
		ln.Close()
		t.Errorf("listened over a symbolic link")
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Gid != 0 {
		t.Errorf("the link's target changed: %v gid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Gid)
	}
	os.Remove(filepath.Join(own, "update.sock"))

	// In its own directory: socket 0660 and directory 0750, both group
	// gid; the group can connect but cannot remove or replace the socket.
	sock := filepath.Join(own, "update.sock")
	ln, _, err := listenUnix(sock, nobody)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for path, want := range map[string]os.FileMode{sock: os.ModeSocket | 0o660, own: os.ModeDir | 0o750} {
		fi, _ := os.Lstat(path)
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != want || st.Uid != 0 || st.Gid != nobody {
			t.Errorf("%s: %v uid %d gid %d, want %v root:%d", path, fi.Mode(), st.Uid, st.Gid, want, nobody)
		}
	}
	sh := exec.Command("sh", "-c", `rm -f "$S" 2>&1 && echo REMOVED; ln -s /etc/shadow "$S.x" 2>&1 && echo LINKED; true`)
	sh.Env = append(os.Environ(), "S="+sock)
	sh.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, _ := sh.CombinedOutput()
	if strings.Contains(string(out), "REMOVED") || strings.Contains(string(out), "LINKED") {
		t.Errorf("the socket's group could change the updater's directory: %s", out)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Errorf("socket gone: %v", err)
	}
}
