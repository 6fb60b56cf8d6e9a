package enrol

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/lab"
)

// loseFinish delivers requests but loses the first answer to the finish
// request, as a network cut after the server committed would.
type loseFinish struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	lost int
	sent int
}

func (l *loseFinish) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err != nil || !strings.HasSuffix(r.URL.Path, protocol.EnrolFinishPath) {
		return resp, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	if l.lost == 0 {
		l.lost++
		resp.Body.Close()
		return nil, errors.New("connection reset (injected)")
	}
	return resp, nil
}

func TestLostFinishAnswerIsRetriedIdempotently(t *testing.T) {
	cp := lab.NewTest(t)
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	tr := &loseFinish{rt: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cp.CAPool}}}
	c := &Client{URL: cp.URL(), Name: "dc1", Transport: tr}
	id, err := c.Enrol(context.Background(), tok)
	if err != nil {
		t.Fatalf("Enrol = %v", err)
	}
	if tr.sent != 2 || tr.lost != 1 {
		t.Errorf("finish sent %d times (%d lost), want 2 (1)", tr.sent, tr.lost)
	}
	if n := len(cp.Authority.Connectors()); n != 1 {
		t.Errorf("%d connectors after the retry, want 1", n)
	}
	if w, err := (&Client{URL: cp.URL(), RootCAs: cp.CAPool}).WhoAmI(context.Background(), id); err != nil || w.ConnectorID != id.ConnectorID {
		t.Errorf("WhoAmI with the retried identity = %+v, %v", w, err)
	}
}

func TestErrorsAreTypedWithHints(t *testing.T) {
	cp := lab.NewTest(t)
	c := &Client{URL: cp.URL(), RootCAs: cp.CAPool}
	tok, _ := cp.Authority.CreateToken("dc1", 0)
	if _, err := c.Enrol(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	unknown, _ := protocol.NewToken(nil)
	typo := []byte(tok)
	typo[5] = map[bool]byte{true: 'A', false: 'B'}[typo[5] != 'A']
	for _, tc := range []struct{ tok, code string }{
		{tok, protocol.CodeTokenUsed},
		{unknown, protocol.CodeTokenUnknown},
		{string(typo), protocol.CodeTokenTypo},
		{"ABC", protocol.CodeBadRequest},
	} {
		_, err := c.Enrol(context.Background(), tc.tok)
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || e.Hint() == "" || !Permanent(err) {
			t.Errorf("Enrol(%s case) = %v, want code %s with a hint", tc.code, err, tc.code)
		}
	}
}
