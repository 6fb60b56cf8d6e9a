package support

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

// FuzzRedact plants one secret (a token in some spelling, a PEM or age
// private key, a URL password, an Authorization header, a field named
// like a secret — kind and seed choose it, as TestNoPlantedSecretSurvives
// makes them) between fuzzed text and checks that no part of it survives
// Redact: none of its needles, and no token in any spelling. The secret
// stands as a word: the byte on either side is not a letter, digit or
// underscore (a space is put in between otherwise).
func FuzzRedact(f *testing.F) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, before, after []byte, kind uint16, seed uint64) {
		g := &secretGen{r: mrand.New(mrand.NewPCG(seed, 16)), rsa: rsaKey}
		ss := g.secrets(t)
		s := ss[int(kind)%len(ss)]
		var in bytes.Buffer
		in.Write(before)
		if len(before) > 0 && isWord(before[len(before)-1]) {
			in.WriteByte(' ')
		}
		in.WriteString(s.text)
		if len(after) > 0 && isWord(after[0]) {
			in.WriteByte(' ')
		}
		in.Write(after)
		out, _ := Redactor{}.Redact(in.Bytes())
		for _, n := range s.needles {
			if bytes.Contains(out, []byte(n)) {
				t.Fatalf("the %s survives in\n%q\nas\n%q", s.kind, in.Bytes(), out)
			}
		}
		if s.token != "" && strings.Contains(normalise(out), s.token) && !strings.Contains(normalise(append(before, after...)), s.token) {
			t.Fatalf("the %s survives (in some spelling) in\n%q\nas\n%q", s.kind, in.Bytes(), out)
		}
	})
}

func isWord(c byte) bool { return isAlnum(c) || c == '_' }
