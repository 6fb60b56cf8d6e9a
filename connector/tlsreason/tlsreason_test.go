package tlsreason

import (
	"errors"
	"net"
	"testing"
	"time"
)

// Failures that are not about TLS are left to the caller's own wording;
// the TLS cases run over real TLS in connector/tunnel (tlsfail_test.go)
// and connector/agent (trust_test.go).
func TestExplainLeavesOtherErrors(t *testing.T) {
	for _, err := range []error{nil, errors.New("boom"), &net.OpError{Op: "dial", Err: errors.New("connection refused")}} {
		if e, ok := Explain(err, "cp:443", time.Now()); ok {
			t.Errorf("Explain(%v) = %+v, want not a TLS failure", err, e)
		}
		if got := Wrap(err, "cp:443", time.Now()); got != err {
			t.Errorf("Wrap(%v) = %v, want it unchanged", err, got)
		}
	}
}

func TestExplainAlert(t *testing.T) {
	err := &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}
	e, ok := Explain(err, "cp:443", time.Now())
	if !ok || e.Hint == "" {
		t.Fatalf("Explain(alert) = %+v, %v", e, ok)
	}
	var w *Error
	if !errors.As(Wrap(err, "cp:443", time.Now()), &w) || !errors.Is(w, err) {
		t.Errorf("Wrap does not keep the cause")
	}
}
