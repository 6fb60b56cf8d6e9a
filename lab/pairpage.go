package lab

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// pairPage is the approval page (GET protocol.PairPagePath): the page a
// QR code on a connector's console opens. An administrator signs in with
// the lab's password, sees which appliance asks (hostname, addresses,
// versions, the code) and approves (naming the connector, or as a
// recovery of the connector it names) or denies. Plain HTML forms, no
// JavaScript, no external resources.
//
//	GET  /pair[?code=XXXX-XXXX]  sign-in form, code form, or the request
//	POST /pair/login             password → session cookie → back to /pair?code=…
//	POST /pair/decide            csrf, code, name, action=approve|recover|deny
//	POST /pair/logout            csrf
//
// Wrong codes and wrong passwords count against the client's address
// (failLimiter): after 5 in 10 minutes, or 50 from everybody, the page
// answers 429 with Retry-After, whatever is asked.
type pairPage struct {
	a     *Authority
	auth  *webAuth
	limit *failLimiter
	log   *slog.Logger
}

func (pp *pairPage) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+protocol.PairPagePath, pp.serveGet)
	mux.HandleFunc("POST "+protocol.PairPagePath+"/login", pp.serveLogin)
	mux.HandleFunc("POST "+protocol.PairPagePath+"/decide", pp.serveDecide)
	mux.HandleFunc("POST "+protocol.PairPagePath+"/logout", pp.serveLogout)
}

// pageData fills pageTemplate.
type pageData struct {
	Title   string
	Kind    string // login, code, request, done, error
	Code    string // as typed / shown
	Message string
	Problem bool
	CSRF    string
	Pairing *Pairing
	Now     time.Time
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (pp *pairPage) render(w http.ResponseWriter, status int, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	d.Now = pp.a.cfg.Now().UTC()
	if err := pageTemplate.Execute(w, d); err != nil {
		pp.log.Warn("approval page", "err", err)
	}
}

// limited answers 429 when client may not guess now.
func (pp *pairPage) limited(w http.ResponseWriter, client, code string) bool {
	ok, after, global := pp.limit.Check(client)
	if ok {
		return false
	}
	secs := int((after + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	who := "from your address (" + client + ")"
	if global {
		who = "from many addresses"
	}
	pp.log.Warn("approval page: too many wrong codes or passwords", "client", client, "global", global)
	pp.render(w, http.StatusTooManyRequests, pageData{Title: "Too many attempts", Kind: "error", Code: code, Problem: true,
		Message: fmt.Sprintf("Too many wrong codes or passwords %s. Try again in %d seconds.", who, secs)})
	return true
}

func (pp *pairPage) serveGet(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get(protocol.PairPageQuery)
	csrf, signedIn := pp.auth.Session(r)
	if !signedIn {
		pp.render(w, http.StatusOK, pageData{Title: "Sign in to approve a connector", Kind: "login", Code: code})
		return
	}
	if code == "" {
		pp.render(w, http.StatusOK, pageData{Title: "Pair a connector", Kind: "code", CSRF: csrf})
		return
	}
	client := clientAddr(r)
	if pp.limited(w, client, code) {
		return
	}
	p, err := pp.a.LookupPairing(code)
	if err != nil {
		pp.lookupFailed(w, client, code, csrf, err)
		return
	}
	pp.render(w, http.StatusOK, pageData{Title: "Approve this connector?", Kind: "request", Code: p.UserCode, CSRF: csrf, Pairing: &p})
}

// lookupFailed shows why a code did not lead to a pending pairing and
// counts a guess (a typo or an unknown code) against client.
func (pp *pairPage) lookupFailed(w http.ResponseWriter, client, code, csrf string, err error) {
	status := http.StatusNotFound
	switch {
	case errors.Is(err, ErrPairCodeTypo):
		pp.limit.Fail(client)
		status = http.StatusBadRequest
	case errors.Is(err, ErrPairCodeUnknown):
		pp.limit.Fail(client)
	case errors.Is(err, ErrPairCodeExpired), errors.Is(err, ErrPairCodeUsed):
		status = http.StatusGone
	default:
		status = http.StatusBadRequest
	}
	msg := err.Error()
	if msg != "" && msg[0] >= 'a' && msg[0] <= 'z' {
		msg = string(msg[0]-'a'+'A') + msg[1:]
	}
	pp.render(w, status, pageData{Title: "Pair a connector", Kind: "code", Code: code, CSRF: csrf, Problem: true, Message: msg + "."})
}

func (pp *pairPage) serveLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	code := r.PostFormValue("code")
	client := clientAddr(r)
	if pp.limited(w, client, code) {
		return
	}
	if !pp.auth.CheckPassword(r.PostFormValue("password")) {
		pp.limit.Fail(client)
		pp.log.Warn("approval page: wrong password", "client", client)
		pp.render(w, http.StatusUnauthorized, pageData{Title: "Sign in to approve a connector", Kind: "login", Code: code, Problem: true,
			Message: "Wrong password. The lab's administrator password is printed by `vaultpam-lab admin-password --state DIR`."})
		return
	}
	if err := pp.auth.NewSession(w); err != nil {
		pp.render(w, http.StatusServiceUnavailable, pageData{Title: "Sign-in failed", Kind: "error", Problem: true, Message: err.Error()})
		return
	}
	pp.log.Info("approval page: signed in", "client", client)
	http.Redirect(w, r, pageURL(code), http.StatusSeeOther)
}

// pageURL is the page for code (only the code is carried over: no open
// redirect).
func pageURL(code string) string {
	if code == "" {
		return protocol.PairPagePath
	}
	return protocol.PairPagePath + "?" + url.Values{protocol.PairPageQuery: {code}}.Encode()
}

func (pp *pairPage) serveDecide(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	code := r.PostFormValue("code")
	csrf, signedIn := pp.auth.Session(r)
	if !signedIn {
		http.Redirect(w, r, pageURL(code), http.StatusSeeOther)
		return
	}
	if !pp.auth.CheckCSRF(r, csrf) {
		pp.render(w, http.StatusForbidden, pageData{Title: "Not accepted", Kind: "error", Problem: true,
			Message: "This form did not come from this page (CSRF check failed). Open the pairing link again."})
		return
	}
	client := clientAddr(r)
	if pp.limited(w, client, code) {
		return
	}
	d := PairDecision{By: client}
	switch r.PostFormValue("action") {
	case "approve":
		d.Approve, d.Name = true, r.PostFormValue("name")
	case "recover":
		p, err := pp.a.LookupPairing(code)
		if err != nil {
			pp.lookupFailed(w, client, code, csrf, err)
			return
		}
		if p.Candidate == "" {
			pp.render(w, http.StatusBadRequest, pageData{Title: "Not accepted", Kind: "error", Problem: true,
				Message: "There is no connector to recover for this request; approve it as a new connector instead."})
			return
		}
		d.Approve, d.Recover = true, p.Candidate
	case "deny":
	default:
		pp.render(w, http.StatusBadRequest, pageData{Title: "Not accepted", Kind: "error", Problem: true, Message: "Choose Approve or Deny."})
		return
	}
	p, err := pp.a.DecidePairing(code, d)
	switch {
	case errors.Is(err, ErrPairCodeTypo), errors.Is(err, ErrPairCodeUnknown), errors.Is(err, ErrPairCodeExpired), errors.Is(err, ErrPairCodeUsed):
		pp.lookupFailed(w, client, code, csrf, err)
		return
	case err != nil:
		lp, lerr := pp.a.LookupPairing(code)
		if lerr != nil {
			pp.lookupFailed(w, client, code, csrf, lerr)
			return
		}
		pp.render(w, http.StatusBadRequest, pageData{Title: "Approve this connector?", Kind: "request", Code: lp.UserCode, CSRF: csrf, Pairing: &lp, Problem: true, Message: err.Error() + "."})
		return
	}
	msg := fmt.Sprintf("Denied. The connector's console shows that code %s was denied.", p.UserCode)
	switch {
	case p.Status == PairApproved && p.Recover != "":
		msg = fmt.Sprintf("Approved as the recovery of %s (%s). The connector enrols with the same ID within a few seconds; its old certificate is revoked.", p.Name, p.Recover)
	case p.Status == PairApproved:
		msg = fmt.Sprintf("Approved: %s enrols within a few seconds and then shows Online.", p.Name)
	}
	pp.log.Info("pairing decided", "code", p.UserCode, "status", p.Status, "name", p.Name, "recover", p.Recover, "by", client)
	pp.render(w, http.StatusOK, pageData{Title: "Pair a connector", Kind: "done", Code: p.UserCode, CSRF: csrf, Pairing: &p, Message: msg})
}

func (pp *pairPage) serveLogout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if csrf, ok := pp.auth.Session(r); ok && pp.auth.CheckCSRF(r, csrf) {
		pp.auth.EndSession(w, r)
	}
	http.Redirect(w, r, protocol.PairPagePath, http.StatusSeeOther)
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"utc": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"left": func(until, now time.Time) string {
		d := until.Sub(now).Round(time.Second)
		if d <= 0 {
			return "expired"
		}
		return d.String() + " left"
	},
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} — VaultPAM lab</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 34em; margin: 1.5em auto; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.4em; }
.code { font-family: ui-monospace, monospace; font-size: 2em; letter-spacing: .1em; }
.problem { border-left: .3em solid #b00; padding: .3em .8em; background: #fee; }
.ok { border-left: .3em solid #070; padding: .3em .8em; background: #efe; }
table { border-collapse: collapse; } th { text-align: left; padding-right: 1em; vertical-align: top; }
input[type=text], input[type=password] { font-size: 1.2em; width: 100%; box-sizing: border-box; }
button { font-size: 1.1em; margin: .4em .4em .4em 0; padding: .3em .8em; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{if .Message}}<p class="{{if .Problem}}problem{{else}}ok{{end}}" id="message">{{.Message}}</p>{{end}}
{{if eq .Kind "login"}}
<form method="post" action="/pair/login">
<input type="hidden" name="code" value="{{.Code}}">
{{if .Code}}<p>Code <span class="code">{{.Code}}</span></p>{{end}}
<p><label for="password">Administrator password</label><br>
<input type="password" id="password" name="password" autocomplete="current-password" autofocus required></p>
<p><button type="submit" id="signin">Sign in</button></p>
</form>
{{else if eq .Kind "code"}}
<form method="get" action="/pair">
<p><label for="code">The code on the connector's console (XXXX-XXXX)</label><br>
<input type="text" id="code" name="code" value="{{.Code}}" autocomplete="off" autocapitalize="characters" spellcheck="false" autofocus required></p>
<p><button type="submit" id="lookup">Continue</button></p>
</form>
{{else if eq .Kind "request"}}{{with .Pairing}}
<p>A connector asks to be paired with this control plane. Approve only if the code below is the one on its console.</p>
<p class="code" id="code">{{.UserCode}}</p>
<table>
<tr><th>Hostname</th><td id="hostname">{{if .Hostname}}{{.Hostname}}{{else}}(not given){{end}}</td></tr>
<tr><th>IP addresses</th><td id="addresses">{{range $i, $a := .Addresses}}{{if $i}}, {{end}}{{$a}}{{else}}(none given){{end}}</td></tr>
<tr><th>Image version</th><td id="image-version">{{if .ImageVersion}}{{.ImageVersion}}{{else}}(not an appliance){{end}}</td></tr>
<tr><th>Connector version</th><td>{{.Version}}</td></tr>
<tr><th>Asked from</th><td id="remote">{{.RemoteAddr}}</td></tr>
<tr><th>Code valid until</th><td>{{utc .ExpiresAt}} ({{left .ExpiresAt $.Now}})</td></tr>
{{if .ConnectorID}}<tr><th>Previous connector</th><td id="previous">{{.ConnectorID}}{{if .KnownAs}} ({{.KnownAs}}){{else}} (not known here){{end}}</td></tr>{{end}}
{{if .Candidate}}<tr><th>Recovery of</th><td id="candidate">{{.CandidateName}} ({{.Candidate}}): {{.CandidateWhy}}. A recovery keeps that connector's ID, so its resources route to this appliance, and revokes its old certificate.</td></tr>{{end}}
</table>
<form method="post" action="/pair/decide">
<input type="hidden" name="csrf" value="{{$.CSRF}}">
<input type="hidden" name="code" value="{{.UserCode}}">
<p><label for="name">Name of the new connector</label><br>
<input type="text" id="name" name="name" value="{{.Name}}" pattern="[A-Za-z0-9._\-]{1,63}" required></p>
<p><button type="submit" name="action" value="approve" id="approve">Approve</button>
{{if .Candidate}}<button type="submit" name="action" value="recover" id="recover" formnovalidate>Approve as recovery of {{.CandidateName}} ({{.Candidate}})</button>{{end}}
<button type="submit" name="action" value="deny" id="deny" formnovalidate>Deny</button></p>
</form>
{{end}}{{else if eq .Kind "done"}}
<p><a href="/pair" id="another">Pair another connector</a></p>
{{end}}
{{if .CSRF}}<form method="post" action="/pair/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button type="submit" id="signout">Sign out</button></form>{{end}}
</body>
</html>
`))
