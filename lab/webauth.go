package lab

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vaultpam/appliance/connector/atomicfile"
)

// AdminPasswordFile is the approval page's administrator password, in the
// state directory (0600), made by the first `serve` and printed by
// `vaultpam-lab admin-password`.
const AdminPasswordFile = "admin-password"

// passwordAlphabet is the token alphabet in lower case: nothing to confuse.
const passwordAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// LoadOrCreateAdminPassword returns the password in dir, making a random
// one (20 characters, 100 bits, shown in groups of 5) if there is none.
func LoadOrCreateAdminPassword(dir string, r io.Reader) (string, error) {
	p := filepath.Join(dir, AdminPasswordFile)
	b, err := os.ReadFile(p)
	if err == nil {
		pw := strings.TrimSpace(string(b))
		if pw == "" {
			return "", fmt.Errorf("%s is empty; delete it and `vaultpam-lab serve` makes a new one", p)
		}
		return pw, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading the administrator password: %w", err)
	}
	raw := make([]byte, 20)
	if _, err := io.ReadFull(r, raw); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	var sb strings.Builder
	for i, v := range raw {
		if i > 0 && i%5 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(passwordAlphabet[int(v)%len(passwordAlphabet)])
	}
	pw := sb.String()
	if err := atomicfile.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing the administrator password: %w", err)
	}
	return pw, nil
}

// ReadAdminPassword returns the password in dir, or an error saying how to
// get one.
func ReadAdminPassword(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, AdminPasswordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no administrator password in %s yet", dir)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// webAuth is the approval page's sign-in: one administrator password and
// sessions kept in memory (a restart signs everybody out). A session is a
// random cookie (Secure, HttpOnly, SameSite=Strict) and a CSRF token that
// every form posts back. Safe for concurrent use.
type webAuth struct {
	pwHash [32]byte
	now    func() time.Time
	rand   io.Reader

	mu       sync.Mutex
	sessions map[[32]byte]*webSession // by SHA-256 of the cookie value
}

type webSession struct {
	csrf    string
	expires time.Time
}

const (
	sessionCookie = "vaultpam_lab_session"
	sessionTTL    = 8 * time.Hour
	maxSessions   = 1000
)

func newWebAuth(password string, now func() time.Time, r io.Reader) *webAuth {
	return &webAuth{pwHash: sha256.Sum256([]byte(normalisePassword(password))), now: now, rand: r, sessions: map[[32]byte]*webSession{}}
}

// normalisePassword forgives case, spaces and dashes (typed on a phone).
func normalisePassword(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\t', '\n', '\r':
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// CheckPassword compares in constant time.
func (w *webAuth) CheckPassword(typed string) bool {
	h := sha256.Sum256([]byte(normalisePassword(typed)))
	return subtle.ConstantTimeCompare(h[:], w.pwHash[:]) == 1
}

// NewSession signs a browser in: it sets the session cookie on rw.
func (w *webAuth) NewSession(rw http.ResponseWriter) error {
	id, err := w.random()
	if err != nil {
		return err
	}
	csrf, err := w.random()
	if err != nil {
		return err
	}
	now := w.now()
	w.mu.Lock()
	for k, s := range w.sessions {
		if now.After(s.expires) {
			delete(w.sessions, k)
		}
	}
	if len(w.sessions) >= maxSessions {
		w.mu.Unlock()
		return errors.New("too many sessions; restart the lab to sign everybody out")
	}
	w.sessions[sha256.Sum256([]byte(id))] = &webSession{csrf: csrf, expires: now.Add(sessionTTL)}
	w.mu.Unlock()
	http.SetCookie(rw, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", MaxAge: int(sessionTTL / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return nil
}

// Session returns the request's session's CSRF token, and false when the
// request is not signed in.
func (w *webAuth) Session(r *http.Request) (csrf string, ok bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false
	}
	key := sha256.Sum256([]byte(c.Value))
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sessions[key]
	if s == nil || w.now().After(s.expires) {
		delete(w.sessions, key)
		return "", false
	}
	return s.csrf, true
}

// EndSession signs the request's session out.
func (w *webAuth) EndSession(rw http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		w.mu.Lock()
		delete(w.sessions, sha256.Sum256([]byte(c.Value)))
		w.mu.Unlock()
	}
	http.SetCookie(rw, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// CheckCSRF reports whether the posted form's csrf field is the session's.
func (w *webAuth) CheckCSRF(r *http.Request, csrf string) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(csrf)) == 1
}

func (w *webAuth) random() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(w.rand, b); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
