package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/vaultpam/appliance/connector/qrtext"
)

// browserProfile makes a Chromium profile that trusts the lab's CA: an NSS
// database under a fresh HOME (Chromium on Linux reads $HOME/.pki/nssdb)
// holding ca.pem as a trusted CA. No certificate error is ignored.
func browserProfile(t *testing.T, caFile string) (home string) {
	t.Helper()
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Skip("certutil not installed (apt-get install libnss3-tools): it gives the browser the lab's CA")
	}
	home = filepath.Join(t.TempDir(), "home")
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-d", "sql:" + db, "-N", "--empty-password"},
		{"-d", "sql:" + db, "-A", "-n", "vaultpam-lab", "-t", "C,,", "-i", caFile},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return home
}

// headless starts Debian's Chromium headless on a fresh profile, with
// everything that phones home switched off and every address but loopback
// sent to a closed port (no DNS lookups either).
func headless(t *testing.T, home string) context.Context {
	t.Helper()
	bin := os.Getenv("VAULTPAM_CHROMIUM")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("chromium"); err != nil {
			t.Skip("chromium not installed (apt-get install chromium): the approval page is tested in a real browser")
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("proxy-server", "http://127.0.0.1:9"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(800, 1000),
		chromedp.Env("HOME=" + home),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	return ctx
}

// screenshot keeps what the browser shows, in VAULTPAM_SCREENSHOTS if set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("VAULTPAM_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err == nil {
		t.Logf("screenshot: %s", p)
	}
}

var urlRE = regexp.MustCompile(`(?m)^    (https://\S+/pair\?code=\S+)$`)

// The administrator's side of pairing in a real browser: the connector
// (a process, no token) shows a code and a QR code; the QR code decodes to
// a URL; Chromium opens it, trusting the lab's CA, signs in with the lab's
// password, sees the appliance's hostname, addresses and the code, and
// approves; the connector goes Online with the name given.
func TestPairInBrowser(t *testing.T) {
	dir := t.TempDir()
	e := &env{t: t, state: filepath.Join(dir, "lab"), heartbeat: time.Second, listen: "127.0.0.1:0"}
	e.startServe()
	caFile := filepath.Join(e.state, "ca.pem")
	home := browserProfile(t, caFile)
	url, _ := os.ReadFile(filepath.Join(e.state, "url"))
	base := strings.TrimSpace(string(url))
	cfg := fmt.Sprintf("control_plane_url: %s\ncontrol_plane_ca_file: %s\nconnector_name: dc1\n", base, caFile)
	cfgPath := filepath.Join(dir, "connector.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	socket := filepath.Join(dir, "connector.sock")
	connEnv := []string{"PAM_AGENT_CONFIG=" + cfgPath, "PAM_AGENT_DATA_DIR=" + filepath.Join(dir, "data"), "PAM_AGENT_SOCKET=" + socket}
	start(t, connEnv, false, "vaultpam-connector", "run")
	eventually(t, "connector waiting for a token", func() bool {
		out, err := exec.Command(filepath.Join(binDir, "vaultpam-connector"), "status", "--json", "--socket", socket).Output()
		var st struct{ State string }
		return err == nil && json.Unmarshal(out, &st) == nil && st.State == "awaiting_token"
	})
	pair := start(t, connEnv, false, "vaultpam-connector", "pair", "--socket", socket, "--poll", "100ms")
	var link string
	eventually(t, "pair prints the URL and the QR code", func() bool {
		m := urlRE.FindStringSubmatch(pair.out.String())
		if m == nil || !strings.Contains(pair.out.String(), "  Pairing: waiting") {
			return false
		}
		link = m[1]
		return true
	})
	// The URL the browser opens is the one in the QR code.
	qr, err := qrtext.Parse(strings.Split(pair.out.String(), "\n"), qrtext.Options{})
	if err != nil {
		t.Fatalf("no QR code in pair's output: %v\n%s", err, pair.out.String())
	}
	bmp, _ := gozxing.NewBinaryBitmapFromImage(qr.Image(4))
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil || res.GetText() != link {
		t.Fatalf("the QR code decodes to %v, %v; want %s", res, err, link)
	}
	code := link[strings.LastIndex(link, "=")+1:]
	password, err := lab(t, "admin-password", "--state", e.state)
	if err != nil {
		t.Fatal(err)
	}

	ctx := headless(t, home)
	err = chromedp.Do(ctx,
		chromedp.Navigate(res.GetText()),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("password"), strings.TrimSpace(password)),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("approve")),
	)
	if err != nil {
		screenshot(t, ctx, "pair-failed.png")
		t.Fatalf("signing in on the approval page: %v", err)
	}
	text := func(id string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("reading #%s: %v", id, err)
		}
		return s
	}
	hostname, addresses, shown := text("hostname"), text("addresses"), text("code")
	want, _ := os.Hostname()
	if hostname != want || shown != code || addresses == "" || strings.Contains(addresses, "127.0.0.1") {
		t.Errorf("the page shows hostname %q, addresses %q, code %q; want %q, this machine's non-loopback addresses, %q", hostname, addresses, shown, want, code)
	}
	screenshot(t, ctx, "pair-request.png")
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("name"), "dc1-browser"),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("message")),
	)
	message := ""
	if err == nil {
		message = text("message")
	}
	if err != nil || !strings.HasPrefix(message, "Approved: dc1-browser") {
		screenshot(t, ctx, "pair-failed.png")
		t.Fatalf("approving: %v; the page says %q", err, message)
	}
	screenshot(t, ctx, "pair-approved.png")
	if err := pair.wait(t); err != nil || !strings.Contains(pair.out.String(), "Online: connector conn-") {
		t.Fatalf("pair: %v\n%s", err, pair.out.String())
	}
	cs := connectors(t, e.state)
	if len(cs) != 1 || cs[0].Name != "dc1-browser" || cs[0].Status != "online" {
		t.Errorf("lab connectors = %+v, want dc1-browser online", cs)
	}
	t.Logf("approved %s in Chromium; the lab lists %s %s %s", code, cs[0].ID, cs[0].Name, cs[0].Status)
}
