package lab

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// browser is an HTTPS client with a cookie jar that trusts the lab CA, as
// a person's browser on the approval page.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newBrowser(t *testing.T, ts *TestServer) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: ts.URL(), hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.CAPool}}}}
}

// do sends a request and returns the status, the body and the response.
func (b *browser) do(method, path string, form url.Values) (int, string, *http.Response) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// startOverHTTPS asks for a pairing as a connector does, so the
// verification URIs are built from the address it used.
func startOverHTTPS(t *testing.T, ts *TestServer, req protocol.PairStartRequest) protocol.PairStart {
	t.Helper()
	body, _ := json.Marshal(req)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.CAPool}}}
	resp, err := hc.Post(ts.URL()+protocol.PairStartPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ps protocol.PairStart
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ps) != nil {
		t.Fatalf("POST %s = %s", protocol.PairStartPath, resp.Status)
	}
	return ps
}

func TestPairPageApproves(t *testing.T) {
	ts := NewTest(t)
	ps := startOverHTTPS(t, ts, protocol.PairStartRequest{Name: "dc1", Hostname: "vaultpam-7", Addresses: []string{"198.51.100.7", "2001:db8::7"}, ImageVersion: "0.3.0"})
	want := ts.URL() + "/pair?code=" + protocol.FormatUserCode(ps.UserCode)
	if ps.VerificationURIComplete != want {
		t.Fatalf("verification_uri_complete = %q, want %q", ps.VerificationURIComplete, want)
	}
	path := strings.TrimPrefix(ps.VerificationURIComplete, ts.URL())
	b := newBrowser(t, ts)

	status, page, _ := b.do("GET", path, nil)
	if status != http.StatusOK || !strings.Contains(page, `type="password"`) || strings.Contains(page, "vaultpam-7") {
		t.Fatalf("GET %s signed out = %d, want the sign-in form and nothing about the request:\n%s", path, status, page)
	}
	if status, _, _ = b.do("POST", "/pair/login", url.Values{"password": {"wrong"}, "code": {protocol.FormatUserCode(ps.UserCode)}}); status != http.StatusUnauthorized {
		t.Errorf("wrong password = %d, want 401", status)
	}
	status, page, resp := b.do("POST", "/pair/login", url.Values{"password": {strings.ToUpper(ts.AdminPassword)}, "code": {protocol.FormatUserCode(ps.UserCode)}})
	if status != http.StatusOK || resp.Request.URL.String() != want {
		t.Fatalf("sign-in = %d at %s, want 200 back at %s", status, resp.Request.URL, want)
	}
	for _, s := range []string{"vaultpam-7", "198.51.100.7, 2001:db8::7", "0.3.0", protocol.FormatUserCode(ps.UserCode), `value="dc1"`, "127.0.0.1"} {
		if !strings.Contains(page, s) {
			t.Errorf("the request page does not show %q:\n%s", s, page)
		}
	}
	if strings.Contains(page, "recovery") {
		t.Errorf("the page offers a recovery for a connector that names none")
	}
	// The cookie: Secure, HttpOnly, SameSite=Strict.
	for _, c := range resp.Request.Response.Cookies() {
		if c.Name == sessionCookie && (!c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode) {
			t.Errorf("session cookie = %+v, want Secure, HttpOnly, SameSite=Strict", c)
		}
	}
	csrf := csrfOf(t, page)
	if status, _, _ := b.do("POST", "/pair/decide", url.Values{"code": {ps.UserCode}, "name": {"dc1"}, "action": {"approve"}}); status != http.StatusForbidden {
		t.Errorf("decide without the CSRF token = %d, want 403", status)
	}
	if status, _, _ := b.do("POST", "/pair/decide", url.Values{"code": {ps.UserCode}, "name": {"dc1"}, "action": {"approve"}, "csrf": {csrf + "x"}}); status != http.StatusForbidden {
		t.Errorf("decide with a wrong CSRF token = %d, want 403", status)
	}
	if _, err := ts.Authority.PollPairing(ps.DeviceCode); code(err) != protocol.CodePairPending {
		t.Fatalf("after refused posts: poll = %v, want authorization_pending", err)
	}
	status, page, _ = b.do("POST", "/pair/decide", url.Values{"code": {ps.UserCode}, "name": {"dc1-lab"}, "action": {"approve"}, "csrf": {csrf}})
	if status != http.StatusOK || !strings.Contains(page, "Approved: dc1-lab") {
		t.Fatalf("approve = %d:\n%s", status, page)
	}
	res, err := ts.Authority.PollPairing(ps.DeviceCode)
	if err != nil || res.Name != "dc1-lab" || res.Token == "" {
		t.Fatalf("poll after approval = %+v, %v", res.Name, err)
	}
	// Used: the page says so, and a second approval is refused.
	status, page, _ = b.do("POST", "/pair/decide", url.Values{"code": {ps.UserCode}, "name": {"dc1"}, "action": {"approve"}, "csrf": {csrf}})
	if status != http.StatusGone || !strings.Contains(page, "used already") {
		t.Errorf("approving a used code = %d, want 410 and \"used already\":\n%s", status, page)
	}
}

func TestPairPageRecoveryAndDeny(t *testing.T) {
	ts := NewTest(t)
	tok, _ := ts.Authority.CreateToken("dc9", 0)
	key := mustKey(t)
	first := enrolOK(t, ts.Authority, tok, key)
	b := newBrowser(t, ts)
	b.do("POST", "/pair/login", url.Values{"password": {ts.AdminPassword}})

	rec := startOverHTTPS(t, ts, protocol.PairStartRequest{Name: "dc9", ConnectorID: first.ConnectorID})
	_, page, _ := b.do("GET", "/pair?code="+rec.UserCode, nil)
	label := fmt.Sprintf("Approve as recovery of dc9 (%s)", first.ConnectorID)
	if !strings.Contains(page, label) {
		t.Fatalf("the page does not offer %q:\n%s", label, page)
	}
	status, page, _ := b.do("POST", "/pair/decide", url.Values{"code": {rec.UserCode}, "action": {"recover"}, "csrf": {csrfOf(t, page)}})
	if status != http.StatusOK || !strings.Contains(page, "recovery of dc9") {
		t.Fatalf("approve as recovery = %d:\n%s", status, page)
	}
	if res, err := ts.Authority.PollPairing(rec.DeviceCode); err != nil || !res.Recovery || res.ConnectorID != first.ConnectorID {
		t.Errorf("poll = recovery %v of %s, %v; want a recovery of %s", res.Recovery, res.ConnectorID, err, first.ConnectorID)
	}

	deny := startOverHTTPS(t, ts, protocol.PairStartRequest{Name: "intruder"})
	_, page, _ = b.do("GET", "/pair?code="+deny.UserCode, nil)
	status, page, _ = b.do("POST", "/pair/decide", url.Values{"code": {deny.UserCode}, "action": {"deny"}, "csrf": {csrfOf(t, page)}})
	if status != http.StatusOK || !strings.Contains(page, "Denied") {
		t.Fatalf("deny = %d:\n%s", status, page)
	}
	if _, err := ts.Authority.PollPairing(deny.DeviceCode); code(err) != protocol.CodePairDenied {
		t.Errorf("poll after denial = %v, want access_denied", err)
	}
}

// Guessing codes is refused after 5 wrong ones from an address: 429 with
// Retry-After, for every code — the right one included — until the window
// has passed.
func TestPairPageBruteForce(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	ts := NewTest(t, WithNow(clk.Now), WithPairing(time.Hour, 0)) // the code outlives the window
	ps := startOverHTTPS(t, ts, protocol.PairStartRequest{Name: "dc1"})
	b := newBrowser(t, ts)
	b.do("POST", "/pair/login", url.Values{"password": {ts.AdminPassword}})
	guesses := 0
	for guesses < 100 {
		g, _ := protocol.NewUserCode(nil)
		if g == ps.UserCode {
			continue
		}
		guesses++
		status, page, resp := b.do("GET", "/pair?code="+g, nil)
		if status == http.StatusTooManyRequests {
			secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || secs <= 0 || secs > 600 || !strings.Contains(page, "Too many wrong codes") {
				t.Errorf("refusal: Retry-After %q, page:\n%s", resp.Header.Get("Retry-After"), page)
			}
			break
		}
		if status != http.StatusNotFound || !strings.Contains(page, "No pairing has this code") {
			t.Fatalf("guess %d = %d, want 404 \"No pairing has this code\":\n%s", guesses, status, page)
		}
	}
	if guesses != pageFailPerClient+1 {
		t.Fatalf("refused at guess %d, want %d", guesses, pageFailPerClient+1)
	}
	t.Logf("guess %d refused with 429", guesses)
	if status, _, _ := b.do("GET", "/pair?code="+ps.UserCode, nil); status != http.StatusTooManyRequests {
		t.Errorf("the right code while refused = %d, want 429", status)
	}
	if _, err := ts.Authority.PollPairing(ps.DeviceCode); code(err) != protocol.CodePairPending {
		t.Errorf("the pairing after the guesses = %v, want still pending", err)
	}
	// A typo counts too, and wrong passwords do (a second browser, same address).
	clk.Add(pageFailWindow)
	if status, _, _ := b.do("GET", "/pair?code="+ps.UserCode, nil); status != http.StatusOK {
		t.Errorf("the right code after the window = %d, want 200", status)
	}
	typo := []byte(ps.UserCode)
	typo[0], typo[1] = typo[1], typo[0]
	if typo[0] != typo[1] {
		if status, page, _ := b.do("GET", "/pair?code="+string(typo), nil); status != http.StatusBadRequest || !strings.Contains(page, "typo") {
			t.Errorf("a typo = %d, want 400 saying typo:\n%s", status, page)
		}
	}
	other := newBrowser(t, ts)
	for range pageFailPerClient {
		other.do("POST", "/pair/login", url.Values{"password": {"guess"}})
	}
	if status, _, _ := other.do("POST", "/pair/login", url.Values{"password": {ts.AdminPassword}}); status != http.StatusTooManyRequests {
		t.Errorf("the right password after wrong ones = %d, want 429", status)
	}
}

func TestFailLimiterGlobalCap(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	l := newFailLimiter(clk.Now)
	for i := range pageFailGlobal {
		l.Fail(fmt.Sprintf("192.0.2.%d", i))
	}
	ok, after, global := l.Check("198.51.100.1")
	if ok || !global || after <= 0 || after > pageFailWindow {
		t.Errorf("Check after %d failures from many = %v, %v, global %v; want refused by the global cap", pageFailGlobal, ok, after, global)
	}
	clk.Add(pageFailWindow)
	if ok, _, _ := l.Check("198.51.100.1"); !ok {
		t.Error("still refused after the window")
	}
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
