// Package redacttest makes the secrets the redaction tests plant: tokens
// in every spelling, PEM and age private keys, URL passwords,
// authorization headers and fields named like secrets, each with the
// needles that must not survive.
package redacttest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/vaultpam/appliance/connector/protocol"
)

// NewGen returns a generator seeded with seed; rsaKey is reused for the
// RSA key kinds (RSA keys are slow to make).
func NewGen(seed uint64, rsaKey *rsa.PrivateKey) *Gen {
	return &Gen{r: mrand.New(mrand.NewPCG(seed, 16)), rsa: rsaKey}
}

// Secret is something planted in a bundle that must not come out: text
// is what is planted, needles what must not appear in the result.
type Secret struct {
	Kind    string
	Text    string
	Needles []string
	Token   string // canonical token, searched for in normalised output too
}

type Gen struct {
	r   *mrand.Rand
	rsa *rsa.PrivateKey // RSA keys are slow to make: one per run
}

func (g *Gen) word(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(b)
}

const pwAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!$%&*+=~_."

// tokenText writes token t the ways a person or a program might.
func (g *Gen) tokenText(t string) string {
	switch g.r.IntN(6) {
	case 0:
		return t
	case 1:
		return protocol.FormatToken(t)
	case 2:
		return strings.ToLower(protocol.FormatToken(t))
	case 3:
		return strings.ReplaceAll(protocol.FormatToken(t), "-", " ")
	case 4: // O for 0 and l for 1, as typed from a screen
		return strings.NewReplacer("0", "O", "1", "l").Replace(protocol.FormatToken(t))
	default:
		var b strings.Builder
		for i, c := range t {
			if i%2 == 0 {
				b.WriteString(strings.ToLower(string(c)))
			} else {
				b.WriteRune(c)
			}
		}
		return b.String()
	}
}

// pemBody returns the base64 lines of a PEM block (needles) and the block.
func pemBody(typ string, der []byte) (string, []string) {
	block := string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			lines = append(lines, l)
		}
	}
	return block, lines
}

// Secrets makes one of every kind.
func (g *Gen) Secrets(t testing.TB) []Secret {
	var out []Secret
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(g.r.Uint32())
	}
	tok, err := protocol.NewToken(bytes.NewReader(bytes.Repeat(seed, 8)))
	if err != nil {
		t.Fatal(err)
	}
	tt := g.tokenText(tok)
	out = append(out, Secret{Kind: "token", Text: tt, Token: tok, Needles: []string{tt}},
		Secret{Kind: "token in env", Text: "PAM_ENROLMENT_TOKEN=" + g.tokenText(tok), Token: tok},
		Secret{Kind: "token after underscore", Text: "token_" + tok, Token: tok})
	// A token with a typo: 19 characters of the real one.
	typo := []byte(tok)
	typo[g.r.IntN(19)] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[g.r.IntN(32)]
	if _, err := protocol.ParseToken(string(typo)); err != nil && strings.ContainsAny(string(typo), "0123456789") && strings.ContainsAny(string(typo), "ABCDEFGHJKMNPQRSTVWXYZ") {
		out = append(out, Secret{Kind: "token with a typo", Text: protocol.FormatToken(string(typo)), Token: string(typo)})
	}

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(ec)
	block, lines := pemBody("EC PRIVATE KEY", der)
	out = append(out, Secret{Kind: "EC PEM key", Text: block, Needles: lines})
	der, _ = x509.MarshalPKCS8PrivateKey(ec)
	block, lines = pemBody("PRIVATE KEY", der)
	out = append(out, Secret{Kind: "PKCS8 PEM key", Text: block, Needles: lines})
	// The same key as a JSON string, newlines escaped (as identity.json
	// or a status dump would hold it).
	js, _ := json.Marshal(block)
	out = append(out, Secret{Kind: "PEM key in a JSON string", Text: `{"k": ` + string(js) + `}`, Needles: lines})
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(ed)
	block, lines = pemBody("PRIVATE KEY", der)
	out = append(out, Secret{Kind: "ed25519 PEM key", Text: block, Needles: lines})
	block, lines = pemBody("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(g.rsa))
	out = append(out, Secret{Kind: "RSA PEM key", Text: block, Needles: lines})
	block, lines = pemBody("OPENSSH PRIVATE KEY", []byte(g.word(300, pwAlphabet)))
	out = append(out, Secret{Kind: "OpenSSH key", Text: block, Needles: lines})
	block, lines = pemBody("ENCRYPTED PRIVATE KEY", []byte(g.word(200, pwAlphabet)))
	cut := block[:len(block)/2] // a truncated key: no END line
	var cutLines []string
	for _, l := range lines {
		if strings.Contains(cut, l) {
			cutLines = append(cutLines, l)
		}
	}
	out = append(out, Secret{Kind: "truncated PEM key", Text: cut, Needles: cutLines})
	id, _ := age.GenerateX25519Identity()
	out = append(out, Secret{Kind: "age secret key", Text: id.String(), Needles: []string{id.String()[16:]}})

	pw := g.word(8+g.r.IntN(16), pwAlphabet)
	out = append(out, Secret{Kind: "URL password", Text: "proxy_url: http://svc-proxy:" + pw + "@proxy.internal:3128", Needles: []string{":" + pw + "@"}})
	pw = g.word(12, pwAlphabet)
	out = append(out, Secret{Kind: "URL password in a log line", Text: `level=WARN msg="dial failed" url=https://u:` + pw + `@cp.example.com:443/v1`, Needles: []string{pw}})
	bearer := g.word(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
	out = append(out, Secret{Kind: "Authorization header", Text: "Authorization: Bearer " + bearer, Needles: []string{bearer}})
	basic := base64.StdEncoding.EncodeToString([]byte("user:" + g.word(16, pwAlphabet)))
	out = append(out, Secret{Kind: "Proxy-Authorization header", Text: "Proxy-Authorization: Basic " + basic, Needles: []string{basic}})
	for _, field := range []string{"private_key", "api_token", "password", "clientSecret", "Authorization", "psk"} {
		v := g.word(24, pwAlphabet)
		out = append(out, Secret{Kind: "JSON field " + field, Text: fmt.Sprintf(`{"%s": "%s", "name": "dc1"}`, field, v), Needles: []string{v}})
	}
	for _, field := range []string{"PrivateKey", "PresharedKey", "Password", "proxy_password"} {
		v := g.word(32, pwAlphabet)
		sep := "="
		if strings.Contains(field, "_") {
			sep = ": "
		}
		out = append(out, Secret{Kind: "line field " + field, Text: "  " + field + sep + v, Needles: []string{v}})
	}
	v := g.word(20, pwAlphabet)
	out = append(out, Secret{Kind: "inline log field", Text: `time=2026-11-28T14:05:08Z level=INFO msg=x session_token=` + v + ` other=1`, Needles: []string{v}})
	return out
}

// Normalise maps text the way ParseToken reads a token, so a token left
// in any spelling is found.
func Normalise(b []byte) string {
	return strings.NewReplacer("-", "", " ", "", "O", "0", "I", "1", "L", "1").Replace(strings.ToUpper(string(b)))
}
