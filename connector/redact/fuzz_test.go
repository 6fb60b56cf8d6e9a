package redact_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/redact"
	"github.com/vaultpam/appliance/connector/redact/redacttest"
)

// FuzzThorough plants one secret (a token in some spelling, a PEM or age
// private key, a URL password, an Authorization header, a field named
// like a secret — kind and seed choose it, as TestNoPlantedSecretSurvives
// makes them) between fuzzed text and checks that no part of it survives
// Thorough: none of its needles, and no token in any spelling. The secret
// stands as a word: the byte on either side is not a letter, digit or
// underscore (a space is put in between otherwise).
func FuzzThorough(f *testing.F) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, before, after []byte, kind uint16, seed uint64) {
		g := redacttest.NewGen(seed, rsaKey)
		ss := g.Secrets(t)
		s := ss[int(kind)%len(ss)]
		var in bytes.Buffer
		in.Write(before)
		if len(before) > 0 && isWord(before[len(before)-1]) {
			in.WriteByte(' ')
		}
		in.WriteString(s.Text)
		if len(after) > 0 && isWord(after[0]) {
			in.WriteByte(' ')
		}
		in.Write(after)
		out, _ := redact.Thorough(in.Bytes())
		for _, n := range s.Needles {
			if bytes.Contains(out, []byte(n)) {
				t.Fatalf("the %s survives in\n%q\nas\n%q", s.Kind, in.Bytes(), out)
			}
		}
		if s.Token != "" && strings.Contains(redacttest.Normalise(out), s.Token) && !strings.Contains(redacttest.Normalise(append(before, after...)), s.Token) {
			t.Fatalf("the %s survives (in some spelling) in\n%q\nas\n%q", s.Kind, in.Bytes(), out)
		}
	})
}

func isWord(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}
