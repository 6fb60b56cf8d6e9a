package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/update/esp"
	"github.com/vaultpam/appliance/update/internal/updatetest"
)

// connectorOwnedData makes a /data like the appliance's: a directory the
// connector's user (nobody here) owns, 0700, reachable by that user.
func connectorOwnedData(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (a second user)")
	}
	base := t.TempDir()
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	data := filepath.Join(base, "data")
	os.Mkdir(data, 0o700)
	os.Chown(data, 65534, 65534)
	return data
}

// asNobody runs script in dir as the connector's stand-in user.
func asNobody(t *testing.T, dir, script string) string {
	t.Helper()
	out, err := exec.Command("su", "-s", "/bin/sh", "nobody", "-c", "set -e; cd "+dir+"; "+script).CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	return string(out)
}

// TestPlantedTrustAnchorRefused: the connector's user owns /data, so
// without the boot-time mount point it could rename the root-owned
// /data/update away and make its own, with a root it signed itself as
// tuf/root.json and an offer signed by that root. The updater starts
// again: it takes the directory back, moves what it did not write aside,
// anchors on the baked root only, and refuses the attacker's bundle.
// Before the fix the planted root was the anchor and the bundle installed.
func TestPlantedTrustAnchorRefused(t *testing.T) {
	data := connectorOwnedData(t)
	a := newAppliance(t)
	a.stateDir = filepath.Join(data, "update")
	c := localapi.NewUpdaterClient(a.start("", nil))
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.stop()

	evil := updatetest.NewRepo(t, nil)
	im := updatetest.MakeImage(t, "6.6.6", rootBytes)
	path, digest := im.Bundle(t, t.TempDir())
	evil.AddBundle(t, path, "6.6.6", digest)
	src := filepath.Join(filepath.Dir(data), "src")
	os.Mkdir(src, 0o755)
	os.Rename(evil.Offer(t, path), filepath.Join(src, "offer"))
	os.WriteFile(filepath.Join(src, "root.json"), evil.Root, 0o644)
	exec.Command("chmod", "-R", "a+rX", src).Run()
	asNobody(t, data, strings.Join([]string{
		"mv update update.moved",
		"mkdir -p update/tuf update/incoming",
		"cp " + src + "/root.json update/tuf/root.json",
		"cp " + src + "/root.json update/tuf/2.root.json",
		"cp -r " + src + "/offer update/incoming/offer-evil",
	}, "; "))

	c = localapi.NewUpdaterClient(a.start("", nil))
	im2, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if im2.TrustedRootVersion != 1 {
		t.Errorf("trusted root version = %d, want 1 (the baked root)", im2.TrustedRootVersion)
	}
	err = c.Install(context.Background(), localapi.InstallRequest{Source: "control_plane", Dir: filepath.Join(a.stateDir, "incoming", "offer-evil"), Target: filepath.Base(path)})
	var le *localapi.Error
	if err == nil || !errors.As(err, &le) || le.Code != localapi.UpdateCodeUntrusted {
		t.Fatalf("Install(a bundle signed by a planted root) = %v, want %s", err, localapi.UpdateCodeUntrusted)
	}
	if m, _ := filepath.Glob(filepath.Join(a.stateDir, "tuf.untrusted-*")); len(m) != 1 {
		t.Errorf("the planted tuf/ was not moved aside: %v", m)
	}
}

// TestForgedRecordsNeverRetireBootEntries: the connector's user swaps
// /data/update (while the updater runs) for a directory with forged
// pending.json records: a "blessed downgrade" from slot B (which would
// retire B's good image) and then one from the running slot A (which
// would retire A's only entry: nothing boots). The updater refuses
// records it did not write, and reconcile refuses a record whose slots
// are not A and B. Before the fix both entries were retired.
func TestForgedRecordsNeverRetireBootEntries(t *testing.T) {
	data := connectorOwnedData(t)
	a := newAppliance(t)
	a.stateDir = filepath.Join(data, "update")
	os.WriteFile(filepath.Join(a.espDir, "vaultpam-0.0.9-B.efi"), []byte("good older image"), 0o644)
	var mu sync.Mutex
	var logs strings.Builder
	a.logf = func(format string, args ...any) { mu.Lock(); fmt.Fprintf(&logs, format+"\n", args...); mu.Unlock() }
	a.start("", nil)
	pending := func(from string) string {
		return fmt.Sprintf(`{"kind":"downgrade","version":"0.1.0","slot":"A","from_version":"0.1.0","from_slot":"%s","stage":"trial","started":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z"}`, from)
	}
	asNobody(t, data, "mv update update.moved; mkdir update; printf '%s' '"+pending("B")+"' > update/pending.json")
	time.Sleep(50 * a.tick) // the daemon looks at pending.json every tick
	asNobody(t, data, "mv update update.moved2; mkdir update; printf '%s' '"+pending("A")+"' > update/pending.json")
	time.Sleep(50 * a.tick)
	a.stop()
	names := espNames(t, a.espDir)
	t.Logf("ESP: %s", strings.Join(names, " "))
	for _, want := range []string{"vaultpam-0.1.0-A.efi", "vaultpam-0.0.9-B.efi"} {
		if !contains(names, want) {
			t.Errorf("boot entry %s was retired by a forged record", want)
		}
	}
	if !strings.Contains(logs.String(), "refusing") {
		t.Errorf("the daemon did not say it refused the forged records; log:\n%s", logs.String())
	}
	if e := updatetest.Boot(t, a.espDir, a.vars); e.Slot != "A" {
		t.Errorf("next boot: %s, want slot A", e.Name)
	}
}

func espNames(t *testing.T, dir string) []string {
	d, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range d {
		if _, ok := esp.Parse(e.Name()); ok || strings.HasSuffix(e.Name(), ".retired") {
			n = append(n, e.Name())
		}
	}
	return n
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
