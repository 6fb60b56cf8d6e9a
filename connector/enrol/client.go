// Package enrol is the connector's side of enrolment (ARCHITECTURE.md, "Protocol", 2):
// present the token, answer the challenge with a CSR for a fresh ECDSA
// P-256 key signed over the nonce (proof of possession), and turn the
// answer into an identity.Identity. It also asks the control plane whether
// an existing identity is still accepted (WhoAmI).
//
// Errors the control plane reports come back as *Error with a stable Code
// and a Hint for people; anything else (network, TLS) is transient.
package enrol

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/tlsreason"
)

// Client enrols with one control plane. Fields are read-only after first
// use; a Client is safe for concurrent use.
type Client struct {
	// URL is the control plane, https://HOST:PORT.
	URL string
	// RootCAs verifies the control plane; nil means the system roots.
	RootCAs *x509.CertPool
	// Proxy is an HTTP CONNECT proxy; nil means none.
	Proxy *url.URL
	// Name is the configured connector name, sent along.
	Name string
	// Rand is the randomness for the key; nil means crypto/rand.
	Rand io.Reader
	// Now checks the issued certificate's validity; nil means time.Now.
	Now func() time.Time
	// FinishRetries is how often a finish request whose answer was lost
	// (transport error) is sent again, unchanged; 0 means 3.
	FinishRetries int
	// Transport overrides the HTTP transport (tests); nil builds one.
	Transport http.RoundTripper
	// Step, when set, is called at the named points of an enrolment
	// (StepFinishSent, StepAnswered). Crash tests stop the process there.
	Step func(name string)
}

// Points of an enrolment where Client.Step is called.
const (
	// StepFinishSent: the finish request went out and the control plane
	// answered (it has committed), before the answer is read.
	StepFinishSent = "finish-sent"
	// StepAnswered: the answer is read, before the identity is returned.
	StepAnswered = "answered"
)

func (c *Client) step(name string) {
	if c.Step != nil {
		c.Step(name)
	}
}

// stepAfter calls step(name) once the response to a request came back,
// before it is read.
type stepAfter struct {
	rt   http.RoundTripper
	path string
	step func()
}

func (s stepAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.rt.RoundTrip(r)
	if err == nil && strings.HasSuffix(r.URL.Path, s.path) {
		s.step()
	}
	return resp, err
}

func (c *Client) httpClient(cert *tls.Certificate) *http.Client {
	rt := c.Transport
	if rt == nil {
		// TLS 1.3 only, as for the tunnel.
		tc := &tls.Config{RootCAs: c.RootCAs, NextProtos: []string{protocol.ALPNHTTP}, MinVersion: tls.VersionTLS13, Time: c.now}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: false, TLSHandshakeTimeout: 10 * time.Second}
		if c.Proxy != nil {
			tr.Proxy = http.ProxyURL(c.Proxy)
		}
		rt = tr
	}
	if c.Step != nil {
		rt = stepAfter{rt, protocol.EnrolFinishPath, func() { c.step(StepFinishSent) }}
	}
	return &http.Client{Transport: rt, Timeout: 30 * time.Second,
		// Never follow a redirect: a 307 to http:// or to another host
		// would carry the token (or the CSR) there. do reports it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Enrol presents token (as typed; it is normalised here) and returns the
// new identity: Start, then Finish. A token with a typo fails before any
// network traffic. The agent calls Start and Finish itself, storing the
// pending enrolment in between.
func (c *Client) Enrol(ctx context.Context, token string) (*identity.Identity, error) {
	p, err := c.Start(ctx, token)
	if err != nil {
		return nil, err
	}
	return c.Finish(ctx, p)
}

// Start presents token and prepares the answer to the control plane's
// challenge: a fresh P-256 key, a CSR and the proof of possession. The
// returned enrolment is to be stored (identity.Store.SavePending) before
// Finish sends it, so it can be finished after a crash. The token is not
// consumed yet.
func (c *Client) Start(ctx context.Context, token string) (*identity.Pending, error) {
	canon, err := protocol.ParseToken(token)
	if err != nil {
		code := protocol.CodeBadRequest
		if errors.Is(err, protocol.ErrTokenTypo) {
			code = protocol.CodeTokenTypo
		}
		return nil, &Error{Code: code, Message: err.Error()}
	}
	hc := c.httpClient(nil)
	defer hc.CloseIdleConnections()
	var ch protocol.EnrolChallenge
	if err := c.post(ctx, hc, protocol.EnrolStartPath, protocol.EnrolStartRequest{Token: canon, Name: c.Name}, &ch); err != nil {
		return nil, err
	}
	r := c.Rand
	if r == nil {
		r = rand.Reader
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), r)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(r, &x509.CertificateRequest{Subject: pkix.Name{CommonName: c.Name}}, key)
	if err != nil {
		return nil, fmt.Errorf("creating CSR: %w", err)
	}
	sig, err := ecdsa.SignASN1(r, key, protocol.ChallengeDigest(ch.Nonce, csr))
	if err != nil {
		return nil, fmt.Errorf("signing challenge: %w", err)
	}
	return &identity.Pending{ControlPlane: c.URL, ChallengeID: ch.ChallengeID, Key: key, CSR: csr, Signature: sig,
		ExpiresAt: ch.ExpiresAt, Recovery: ch.Recovery, ConnectorID: ch.ConnectorID, CreatedAt: c.now()}, nil
}

// Finish sends p's finish request and returns the issued identity. The
// same request may be sent any number of times (the control plane answers
// it again with the same certificate), so Finish is what resumes an
// enrolment interrupted at any point; a transport error is retried up to
// FinishRetries times here. An *Error with CodeChallengeFailed means the
// control plane never took p (its challenge expired or was lost): the
// token was not consumed.
func (c *Client) Finish(ctx context.Context, p *identity.Pending) (*identity.Identity, error) {
	hc := c.httpClient(nil)
	defer hc.CloseIdleConnections()
	req := protocol.EnrolFinishRequest{ChallengeID: p.ChallengeID, CSR: p.CSR, Signature: p.Signature}
	tries := c.FinishRetries
	if tries == 0 {
		tries = 3
	}
	var res protocol.EnrolResult
	var err error
	for i := 0; ; i++ {
		err = c.post(ctx, hc, protocol.EnrolFinishPath, req, &res)
		var apiErr *Error
		if err == nil || errors.As(err, &apiErr) || i >= tries || ctx.Err() != nil {
			break
		}
		// The answer was lost: the same request, same key, gets the same
		// certificate back.
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(i+1) * 200 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, err
	}
	c.step(StepAnswered)
	id, err := identity.New(p.Key, res.ConnectorID, c.URL, []byte(res.CertificatePEM), []byte(res.CABundlePEM))
	if err != nil {
		return nil, err
	}
	if err := id.Check(c.now()); err != nil && !errors.Is(err, identity.ErrExpired) && !errors.Is(err, identity.ErrNotYetValid) {
		// Not this machine's clock's business (package tlsreason): only a
		// certificate that is not for our key or connector is unusable.
		return nil, fmt.Errorf("control plane issued an unusable certificate: %w", err)
	}
	return id, nil
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// WhoAmI asks the control plane whether it accepts id's certificate. A
// refusal is an *Error; RefusesIdentity(err) tells a refusal of this very
// certificate (cert_revoked, cert_unknown, cert_expired) from everything
// else, which is worth retrying.
func (c *Client) WhoAmI(ctx context.Context, id *identity.Identity) (protocol.WhoAmI, error) {
	hc := c.httpClient(id.TLSCertificate())
	defer hc.CloseIdleConnections()
	var w protocol.WhoAmI
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+protocol.WhoAmIPath, nil)
	if err != nil {
		return w, err
	}
	err = c.do(hc, req, &w)
	var e *Error
	if errors.As(err, &e) && protocol.RefusesIdentity(e.Code) {
		e.OwnCert = e.certSHA256 == "" || e.certSHA256 == protocol.CertFingerprint(id.Leaf().Raw)
	}
	return w, err
}

func (c *Client) post(ctx context.Context, hc *http.Client, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(hc, req, out)
}

func (c *Client) do(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL adds nothing; keep the cause
		}
		return tlsreason.Wrap(fmt.Errorf("reaching control plane %s: %w", c.URL, err), hostPort(c.URL), c.now())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading control plane answer: %w", err)
	}
	if resp.StatusCode/100 == 3 {
		return fmt.Errorf("control plane %s answered %s with a redirect to %s; redirects are never followed, so the token cannot be sent elsewhere: set control_plane_url to the address that answers itself",
			c.URL, resp.Status, redirectTarget(resp.Header.Get("Location")))
	}
	if resp.StatusCode/100 != 2 {
		var e protocol.ErrorResponse
		if json.Unmarshal(b, &e) != nil || e.Code == "" {
			return fmt.Errorf("control plane answered %s", resp.Status)
		}
		return &Error{Code: e.Code, Message: e.Message, certSHA256: e.CertSHA256}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control plane answer does not decode: %w", err)
	}
	return nil
}

// hostPort is the host:port of an https URL (443 when none is given).
func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return u.Host
}

// redirectTarget names where a redirect points, scheme and host only (its
// path, query or user-info could carry anything).
func redirectTarget(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || u.Host == "" {
		return "another path"
	}
	return u.Scheme + "://" + u.Host
}
