package support

import (
	"bytes"
	"context"
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
	"io/fs"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/vaultpam/appliance/connector/protocol"
)

// secret is something planted in a bundle that must not come out: text
// is what is planted, needles what must not appear in the result.
type secret struct {
	kind    string
	text    string
	needles []string
	token   string // canonical token, searched for in normalised output too
}

type secretGen struct {
	r   *mrand.Rand
	rsa *rsa.PrivateKey // RSA keys are slow to make: one per run
}

func (g *secretGen) word(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(b)
}

const pwAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!$%&*+=~_."

// tokenText writes token t the ways a person or a program might.
func (g *secretGen) tokenText(t string) string {
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

// secrets makes one of every kind.
func (g *secretGen) secrets(t *testing.T) []secret {
	var out []secret
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(g.r.Uint32())
	}
	tok, err := protocol.NewToken(bytes.NewReader(bytes.Repeat(seed, 8)))
	if err != nil {
		t.Fatal(err)
	}
	tt := g.tokenText(tok)
	out = append(out, secret{kind: "token", text: tt, token: tok, needles: []string{tt}},
		secret{kind: "token in env", text: "PAM_ENROLMENT_TOKEN=" + g.tokenText(tok), token: tok},
		secret{kind: "token after underscore", text: "token_" + tok, token: tok})
	// A token with a typo: 19 characters of the real one.
	typo := []byte(tok)
	typo[g.r.IntN(19)] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[g.r.IntN(32)]
	if _, err := protocol.ParseToken(string(typo)); err != nil && strings.ContainsAny(string(typo), "0123456789") && strings.ContainsAny(string(typo), "ABCDEFGHJKMNPQRSTVWXYZ") {
		out = append(out, secret{kind: "token with a typo", text: protocol.FormatToken(string(typo)), token: string(typo)})
	}

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(ec)
	block, lines := pemBody("EC PRIVATE KEY", der)
	out = append(out, secret{kind: "EC PEM key", text: block, needles: lines})
	der, _ = x509.MarshalPKCS8PrivateKey(ec)
	block, lines = pemBody("PRIVATE KEY", der)
	out = append(out, secret{kind: "PKCS8 PEM key", text: block, needles: lines})
	// The same key as a JSON string, newlines escaped (as identity.json
	// or a status dump would hold it).
	js, _ := json.Marshal(block)
	out = append(out, secret{kind: "PEM key in a JSON string", text: `{"k": ` + string(js) + `}`, needles: lines})
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(ed)
	block, lines = pemBody("PRIVATE KEY", der)
	out = append(out, secret{kind: "ed25519 PEM key", text: block, needles: lines})
	block, lines = pemBody("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(g.rsa))
	out = append(out, secret{kind: "RSA PEM key", text: block, needles: lines})
	block, lines = pemBody("OPENSSH PRIVATE KEY", []byte(g.word(300, pwAlphabet)))
	out = append(out, secret{kind: "OpenSSH key", text: block, needles: lines})
	block, lines = pemBody("ENCRYPTED PRIVATE KEY", []byte(g.word(200, pwAlphabet)))
	cut := block[:len(block)/2] // a truncated key: no END line
	var cutLines []string
	for _, l := range lines {
		if strings.Contains(cut, l) {
			cutLines = append(cutLines, l)
		}
	}
	out = append(out, secret{kind: "truncated PEM key", text: cut, needles: cutLines})
	id, _ := age.GenerateX25519Identity()
	out = append(out, secret{kind: "age secret key", text: id.String(), needles: []string{id.String()[16:]}})

	pw := g.word(8+g.r.IntN(16), pwAlphabet)
	out = append(out, secret{kind: "URL password", text: "proxy_url: http://svc-proxy:" + pw + "@proxy.internal:3128", needles: []string{":" + pw + "@"}})
	pw = g.word(12, pwAlphabet)
	out = append(out, secret{kind: "URL password in a log line", text: `level=WARN msg="dial failed" url=https://u:` + pw + `@cp.example.com:443/v1`, needles: []string{pw}})
	bearer := g.word(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
	out = append(out, secret{kind: "Authorization header", text: "Authorization: Bearer " + bearer, needles: []string{bearer}})
	basic := base64.StdEncoding.EncodeToString([]byte("user:" + g.word(16, pwAlphabet)))
	out = append(out, secret{kind: "Proxy-Authorization header", text: "Proxy-Authorization: Basic " + basic, needles: []string{basic}})
	for _, field := range []string{"private_key", "api_token", "password", "clientSecret", "Authorization", "psk"} {
		v := g.word(24, pwAlphabet)
		out = append(out, secret{kind: "JSON field " + field, text: fmt.Sprintf(`{"%s": "%s", "name": "dc1"}`, field, v), needles: []string{v}})
	}
	for _, field := range []string{"PrivateKey", "PresharedKey", "Password", "proxy_password"} {
		v := g.word(32, pwAlphabet)
		sep := "="
		if strings.Contains(field, "_") {
			sep = ": "
		}
		out = append(out, secret{kind: "line field " + field, text: "  " + field + sep + v, needles: []string{v}})
	}
	v := g.word(20, pwAlphabet)
	out = append(out, secret{kind: "inline log field", text: `time=2026-11-28T14:05:08Z level=INFO msg=x session_token=` + v + ` other=1`, needles: []string{v}})
	return out
}

// normalise maps text the way ParseToken reads a token, so a token left
// in any spelling is found.
func normalise(b []byte) string {
	return strings.NewReplacer("-", "", " ", "", "O", "0", "I", "1", "L", "1").Replace(strings.ToUpper(string(b)))
}

// plant puts every secret into text around ordinary lines. A truncated
// PEM key goes last: without its END line the redactor takes everything
// after its BEGIN line, by design.
func plant(prefix string, ss []secret) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s: ordinary line before\n", prefix)
	var last []secret
	for _, s := range ss {
		if strings.HasPrefix(s.kind, "truncated") {
			last = append(last, s)
			continue
		}
		fmt.Fprintf(&b, "%s [%s]: %s\n", prefix, s.kind, s.text)
	}
	fmt.Fprintf(&b, "%s: ordinary line after\n", prefix)
	for _, s := range last {
		fmt.Fprintf(&b, "%s [%s]: %s\n", prefix, s.kind, s.text)
	}
	return b.Bytes()
}

// TestNoPlantedSecretSurvives is the property: whatever tokens, keys,
// passwords and credentials appear in whichever part, none reaches the
// bundle, encrypted and opened again as the vendor would.
func TestNoPlantedSecretSurvives(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	for round := range rounds {
		g := &secretGen{r: mrand.New(mrand.NewPCG(uint64(round), 16)), rsa: rsaKey}
		ss := g.secrets(t)
		src := func(name string) func(context.Context) ([]byte, error) {
			return func(context.Context) ([]byte, error) { return plant(name, ss), nil }
		}
		files := map[string][]byte{}
		o := Options{
			Status: src("status"), Image: src("image"), Diagnostics: src("diagnostics"),
			Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
				return plant(name+" "+strings.Join(args, " "), ss), nil
			},
			ReadFile: func(p string) ([]byte, error) {
				files[p] = nil
				return plant(p, ss), nil
			},
			ReadDir: func(string) ([]fs.DirEntry, error) {
				return []fs.DirEntry{fakeEntry("10-eth0.network"), fakeEntry("20-wg0.netdev")}, nil
			},
			ConfigFile: "/c/connector.yaml", NetworkDir: "/c/network", ResolvConf: "/r/resolv.conf", OSRelease: "/o/os-release", Cmdline: "/p/cmdline",
		}
		b, err := Collect(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := b.Encrypt(id.Recipient().String())
		if err != nil {
			t.Fatal(err)
		}
		back, err := Open(bytes.NewReader(ct), id)
		if err != nil {
			t.Fatal(err)
		}
		man, _ := json.Marshal(back.Manifest)
		all := append(back.Parts, Part{Name: ManifestName, Data: man})
		if len(back.Parts) < 20 {
			t.Fatalf("round %d: %d parts, want every source", round, len(back.Parts))
		}
		for _, p := range all {
			norm := normalise(p.Data)
			for _, s := range ss {
				for _, n := range s.needles {
					if bytes.Contains(p.Data, []byte(n)) {
						t.Errorf("round %d: part %s still holds the %s (%q)", round, p.Name, s.kind, n)
					}
				}
				if s.token != "" && strings.Contains(norm, s.token) {
					t.Errorf("round %d: part %s still holds the %s (in some spelling)", round, p.Name, s.kind)
				}
			}
			if p.Name != ManifestName && !bytes.Contains(p.Data, []byte("ordinary line after")) {
				t.Errorf("round %d: part %s lost the text around the secrets:\n%s", round, p.Name, p.Data)
			}
		}
		for _, info := range back.Manifest.Parts {
			if info.Redactions < len(ss) {
				t.Errorf("round %d: part %s counts %d redactions, %d secrets were planted", round, info.Name, info.Redactions, len(ss))
			}
		}
	}
}

type fakeEntry string

func (f fakeEntry) Name() string               { return string(f) }
func (f fakeEntry) IsDir() bool                { return false }
func (f fakeEntry) Type() fs.FileMode          { return 0 }
func (f fakeEntry) Info() (fs.FileInfo, error) { return nil, fs.ErrNotExist }

// The redactor keeps what is not a secret: people need the rest.
func TestRedactorKeeps(t *testing.T) {
	for _, in := range []string{
		`{"state": "online", "connector_id": "conn-1ccd38fcc9f3ab1a", "reason": "enter the enrolment token", "cert_not_after": "2026-12-05T14:05:08Z"}`,
		"control_plane_url: https://cp.example.com:8443\nconnector_name: dc1\ncontrol_plane_ca_file: /config/ca.pem\n",
		"[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n",
		"session 3fa2c9d1e0b4a5f6c7d8e9f0 ended: internationalization target_closed",
		"sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"proxy_url: http://proxy.internal:3128",
		"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
	} {
		out, n := Redactor{}.Redact([]byte(in))
		if n != 0 || string(out) != in {
			t.Errorf("Redact(%q) = %q (%d redactions), want it unchanged", in, out, n)
		}
	}
}
