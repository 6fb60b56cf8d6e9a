package enrol

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// answers is a control plane that answers each path with a fuzzed status,
// Location and body. In a finish body, @CERT@ becomes a certificate for
// the key of the request's CSR (connector conn-1, from a test CA), @OTHER@
// one for another key, @CA@ the CA: the fuzzer reaches a real identity.
type answers struct {
	status   map[string]int
	location string
	body     map[string][]byte
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	other    *ecdsa.PrivateKey
	t        *testing.T
}

func (a *answers) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		defer r.Body.Close()
	}
	body := a.body[r.URL.Path]
	if r.URL.Path == protocol.EnrolFinishPath && bytes.Contains(body, []byte("@")) {
		var req protocol.EnrolFinishRequest
		json.NewDecoder(r.Body).Decode(&req)
		body = bytes.ReplaceAll(body, []byte("@CA@"), jsonPEM(a.ca.Raw))
		if csr, err := x509.ParseCertificateRequest(req.CSR); err == nil {
			body = bytes.ReplaceAll(body, []byte("@CERT@"), jsonPEM(a.issue(csr.PublicKey)))
		}
		body = bytes.ReplaceAll(body, []byte("@OTHER@"), jsonPEM(a.issue(&a.other.PublicKey)))
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if a.location != "" {
		h.Set("Location", a.location)
	}
	status := a.status[r.URL.Path]
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

func (a *answers) issue(pub any) []byte {
	u, _ := url.Parse(protocol.ConnectorURI("conn-1"))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "conn-1"}, URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.ca, pub, a.caKey)
	if err != nil {
		a.t.Fatal(err)
	}
	return der
}

// jsonPEM is a certificate as it stands inside a JSON string.
func jsonPEM(der []byte) []byte {
	b, _ := json.Marshal(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return b[1 : len(b)-1]
}

// FuzzEnrolAnswers drives the enrolment client against fuzzed control
// plane answers (status, Location, body of start and finish). Properties:
//
//   - an accepted challenge gives a finish request that proves possession:
//     its CSR is for the new key, which signed the nonce and the CSR;
//   - an issued identity is the connector's own: the private key it made,
//     a certificate for that key naming the connector ID it was given;
//   - a refusal with a code comes back as *Error with that code, a
//     redirect is never followed, and no error holds the token unless
//     the control plane itself wrote it in its answer.
func FuzzEnrolAnswers(f *testing.F) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		f.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	token, err := protocol.NewToken(bytes.NewReader(bytes.Repeat([]byte("fuzz-enrolment-token"), 16)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, startStatus, finishStatus uint16, location string, start, finish []byte) {
		a := &answers{status: map[string]int{protocol.EnrolStartPath: int(startStatus), protocol.EnrolFinishPath: int(finishStatus)},
			location: location, body: map[string][]byte{protocol.EnrolStartPath: start, protocol.EnrolFinishPath: finish},
			ca: ca, caKey: caKey, other: other, t: t}
		if startStatus < 100 || startStatus > 999 || finishStatus < 100 || finishStatus > 999 {
			return
		}
		c := &Client{URL: "https://cp.example.com", Name: "dc1", Transport: a, FinishRetries: -1}
		echoed := func(what []byte) bool {
			return bytes.Contains(bytes.ToUpper(what), []byte(token)) || bytes.Contains(bytes.ToUpper(what), []byte(protocol.FormatToken(token)))
		}
		check := func(err error, status uint16, body []byte) {
			if err == nil {
				return
			}
			if m := strings.ToUpper(err.Error()); (strings.Contains(m, token) || strings.Contains(m, protocol.FormatToken(token))) && !echoed(body) {
				t.Fatalf("error %q holds the token", err)
			}
			var e *Error
			var resp protocol.ErrorResponse
			if status/100 != 2 && status/100 != 3 && json.Unmarshal(body, &resp) == nil && resp.Code != "" {
				if !errors.As(err, &e) || e.Code != resp.Code {
					t.Fatalf("answer %d %q: error %v, want *Error with code %q", status, body, err, resp.Code)
				}
			}
			if status/100 == 3 && !strings.Contains(err.Error(), "redirect") {
				t.Fatalf("answer %d: error %q does not say it was a redirect", status, err)
			}
		}
		p, err := c.Start(t.Context(), protocol.FormatToken(token))
		check(err, startStatus, start)
		if err != nil {
			return
		}
		var ch protocol.EnrolChallenge
		if startStatus/100 != 2 || json.Unmarshal(start, &ch) != nil {
			t.Fatalf("answer %d %q taken as a challenge", startStatus, start)
		}
		csr, cerr := x509.ParseCertificateRequest(p.CSR)
		if cerr != nil || p.ChallengeID != ch.ChallengeID {
			t.Fatalf("finish request: CSR %v, challenge %q; want the answer's %q", cerr, p.ChallengeID, ch.ChallengeID)
		}
		if pub, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(p.Key.Public()) || csr.CheckSignature() != nil ||
			!ecdsa.VerifyASN1(&p.Key.PublicKey, protocol.ChallengeDigest(ch.Nonce, p.CSR), p.Signature) {
			t.Fatal("the finish request does not prove possession of the new key")
		}
		id, err := c.Finish(t.Context(), p)
		check(err, finishStatus, finish)
		if err != nil {
			return
		}
		if finishStatus/100 != 2 {
			t.Fatalf("answer %d %q taken as an identity", finishStatus, finish)
		}
		if !id.Key.Equal(p.Key) {
			t.Fatal("the identity's key is not the one the connector made")
		}
		if pub, ok := id.Leaf().PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(p.Key.Public()) {
			t.Fatal("the identity's certificate is for another key")
		}
		if cid, err := protocol.ConnectorIDFromURIs(id.Leaf().URIs); err != nil || cid != id.ConnectorID {
			t.Fatalf("the identity of %q has a certificate for %q (%v)", id.ConnectorID, cid, err)
		}
	})
}
