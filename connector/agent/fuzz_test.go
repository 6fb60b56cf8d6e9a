package agent

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/enrol"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
)

// FuzzTokenRequest posts fuzzed bodies to POST /v1/token of the local API,
// served by a real agent waiting for a token (enrolment, or recovery when
// recover is set). Properties:
//
//   - the agent takes exactly the canonical form of a token that parses,
//     and answers 202; anything else is a JSON error with a code and a
//     message, and the agent takes nothing;
//   - no answer repeats the token sent, not even 6 of its characters.
func FuzzTokenRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, recover bool) {
		mode := durable
		if recover {
			mode = identity.Mode{Name: identity.ModeGuidedRecovery, FSType: "tmpfs"}
		}
		a, err := New(Options{Config: config.Config{ControlPlaneURL: "https://cp.example.com", ConnectorName: "dc1"},
			Store: &identity.Mem{}, Mode: mode, Enroller: &enrol.Client{URL: "https://cp.example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		localapi.Handler(a).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/token", bytes.NewReader(body)))

		var req localapi.TokenRequest
		decodes := json.NewDecoder(bytes.NewReader(body)).Decode(&req) == nil
		canon, perr := protocol.ParseToken(req.Token)
		var taken string
		select {
		case taken = <-a.tokens:
		default:
		}
		if rec.Code == http.StatusAccepted {
			if !decodes || perr != nil || taken != canon {
				t.Fatalf("body %q: 202, the agent took %q; want a token that parses (%v), taken as %q", body, taken, perr, canon)
			}
			return
		}
		if taken != "" {
			t.Fatalf("body %q: answered %d, but the agent took a token", body, rec.Code)
		}
		if decodes && perr == nil {
			t.Fatalf("body %q: a token that parses was refused: %d %s", body, rec.Code, rec.Body)
		}
		var e localapi.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" {
			t.Fatalf("body %q: answer %d %q is not a JSON error with code and message", body, rec.Code, rec.Body)
		}
		if w, ok := repeats(rec.Body.String(), req.Token); ok {
			t.Fatalf("body %q: answer %q repeats %q of the token", body, rec.Body, w)
		}
	})
}

// repeats reports 6 characters of tok in a row, letters and digits mixed
// as in a token, that msg holds (in any case).
func repeats(msg, tok string) (string, bool) {
	m, s := strings.ToUpper(msg), strings.ToUpper(tok)
	for i := 0; i+6 <= len(s); i++ {
		w := s[i : i+6]
		if strings.Trim(w, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" || strings.Trim(w, "0123456789") == "" || strings.Trim(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
			continue
		}
		if strings.Contains(m, w) {
			return w, true
		}
	}
	return "", false
}
