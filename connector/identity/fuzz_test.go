package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vaultpam/appliance/connector/protocol"
)

// reseal puts the right checksum on a file that decodes as JSON, so the
// fuzzer's changes reach past the checksum into keys and certificates.
func reseal[T interface{ sum() string }](b []byte, set func(*T, string)) []byte {
	var f T
	if json.Unmarshal(b, &f) != nil {
		return b
	}
	set(&f, "")
	set(&f, f.sum())
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return b
	}
	return out
}

// FuzzIdentityFile loads fuzzed identity.json files (resealed with a valid
// checksum when seal is set). A damaged file never yields an identity
// whose key and certificate do not match: an identity that loads, or that
// loads with only its validity period in question (ErrExpired,
// ErrNotYetValid: the connector goes on with it), has the key of its
// certificate, a certificate for its connector ID, and saves and loads
// back the same.
//
// It runs what Dir.Load runs after reading the file (decode, then Check)
// and encodes instead of saving, so no iteration waits for an fsync.
func FuzzIdentityFile(f *testing.F) {
	now := t0.Add(time.Hour)
	load := func(b []byte) (*Identity, error) {
		id, err := decode(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return id, id.Check(now)
	}
	f.Fuzz(func(t *testing.T, b []byte, seal bool) {
		if seal {
			b = reseal(b, func(f *fileFormat, s string) { f.Sum = s })
		}
		id, err := load(b)
		switch {
		case err == nil, errors.Is(err, ErrExpired), errors.Is(err, ErrNotYetValid):
		case errors.Is(err, ErrKeyMismatch), errors.Is(err, ErrCorrupt):
			return
		default:
			t.Fatalf("Load = %v: neither an identity nor one of the documented errors", err)
		}
		if id == nil || id.Key == nil || len(id.Chain) == 0 {
			t.Fatalf("Load = %+v, %v: an identity without key or certificate", id, err)
		}
		if pub, ok := id.Leaf().PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(id.Key.Public()) {
			t.Fatalf("Load = %v: the key does not match the certificate", err)
		}
		if cid, cerr := protocol.ConnectorIDFromURIs(id.Leaf().URIs); cerr != nil || cid != id.ConnectorID {
			t.Fatalf("Load = %v: certificate for %q (%v), identity of %q", err, cid, cerr, id.ConnectorID)
		}
		enc, eerr := encode(id)
		if eerr != nil {
			t.Fatalf("encoding the loaded identity: %v", eerr)
		}
		back, err2 := load(enc)
		if (err == nil) != (err2 == nil) || back == nil || !back.Key.Equal(id.Key) || back.ConnectorID != id.ConnectorID ||
			back.ControlPlane != id.ControlPlane || len(back.Chain) != len(id.Chain) || !bytes.Equal(back.CAPEM, id.CAPEM) {
			t.Fatalf("identity saved and loaded again: %+v, %v; want %+v, %v", back, err2, id, err)
		}
		for i := range id.Chain {
			if !back.Chain[i].Equal(id.Chain[i]) {
				t.Fatalf("certificate %d changed between save and load", i)
			}
		}
	})
}

// FuzzPendingFile loads fuzzed enrolment.json files (resealed when seal is
// set). A pending enrolment that loads is one the connector can finish:
// its certificate request is for its key, and it is stored again exactly
// as it loaded.
// Like FuzzIdentityFile it runs what LoadPending and SavePending run
// around the file system.
func FuzzPendingFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, seal bool) {
		if seal {
			b = reseal(b, func(f *pendingFile, s string) { f.Sum = s })
		}
		p, err := decodePending(b)
		if err != nil {
			return
		}
		csr, cerr := x509.ParseCertificateRequest(p.CSR)
		if cerr != nil {
			t.Fatalf("pending enrolment loads with a certificate request that does not parse: %v", cerr)
		}
		if pub, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(p.Key.Public()) {
			t.Fatal("pending enrolment loads with a certificate request for another key")
		}
		enc, err := encodePending(p)
		if err != nil {
			t.Fatalf("a pending enrolment that loads cannot be stored again: %v", err)
		}
		back, err := decodePending(enc)
		if err != nil || !back.Key.Equal(p.Key) || back.ChallengeID != p.ChallengeID || !bytes.Equal(back.CSR, p.CSR) ||
			!bytes.Equal(back.Signature, p.Signature) || !back.ExpiresAt.Equal(p.ExpiresAt) || !back.CreatedAt.Equal(p.CreatedAt) ||
			back.Recovery != p.Recovery || back.ConnectorID != p.ConnectorID || back.ControlPlane != p.ControlPlane {
			t.Fatalf("pending enrolment stored and loaded again: %+v, %v; want %+v", back, err, p)
		}
	})
}
