package config

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/protocol"
)

// secretGen makes the secrets the property tests hide: enrolment tokens
// in every spelling a person might paste, and random passwords.
type secretGen struct{ r *rand.Rand }

func newSecretGen(seed uint64) *secretGen {
	return &secretGen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *secretGen) token() string {
	var b [32]byte
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	tok, err := protocol.NewToken(rand.NewChaCha8(b))
	if err != nil {
		panic(err)
	}
	switch g.r.IntN(4) {
	case 0:
		return tok
	case 1:
		return protocol.FormatToken(tok)
	case 2:
		return strings.ToLower(protocol.FormatToken(tok))
	}
	return strings.ReplaceAll(protocol.FormatToken(tok), "-", " ")
}

// password is 12 to 24 characters: letters, digits and at least one
// symbol (no quote, backslash or space, so it can stand in YAML unquoted).
func (g *secretGen) password() string {
	const letters = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	const symbols = "!$%&*+,./;<=>?^_~(){}|"
	n := 12 + g.r.IntN(13)
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[g.r.IntN(len(letters))]
	}
	b[g.r.IntN(n)] = symbols[g.r.IntN(len(symbols))]
	return string(b)
}

func (g *secretGen) secret() string {
	if g.r.IntN(2) == 0 {
		return g.token()
	}
	return g.password()
}

// leaks reports the part of secret found in msg: the whole secret (any
// case) or any 6 characters of it in a row.
func leaks(msg, secret string) (string, bool) {
	lm := strings.ToLower(msg)
	ls := strings.ToLower(secret)
	if strings.Contains(lm, ls) {
		return secret, true
	}
	const window = 6
	for i := 0; i+window <= len(ls); i++ {
		if w := ls[i : i+window]; strings.Trim(w, " -") == w && strings.Contains(lm, w) {
			return secret[i : i+window], true
		}
	}
	return "", false
}

// TestNoErrorRepeatsASecret: whatever field, list entry, key, YAML syntax
// error or environment variable holds a token or a password, Load's error
// never repeats it, not even 6 characters of it.
func TestNoErrorRepeatsASecret(t *testing.T) {
	g := newSecretGen(1)
	templates := []string{
		// a secret in each field, other fields broken so every check runs
		"control_plane_url: %s\nconnector_name: \"bad name\"\n",
		"control_plane_url: http://cp\nconnector_name: %s\n",
		"control_plane_url: https://cp\nconnector_name: a\ncontrol_plane_ca_file: %s\n",
		"control_plane_url: https://cp\nconnector_name: a\nproxy_url: %s\n",
		"control_plane_url: https://cp\nconnector_name: a\ndrain_timeout: %s\n",
		"control_plane_url: https://cp\nconnector_name: a\nallowed_targets: [\"10.0.0.0/8\", \"%s\"]\n",
		"control_plane_url: https://cp\nconnector_name: a\nallowed_targets: %s\n",
		"control_plane_url: https://%s@cp\nconnector_name: a\n",
		"control_plane_url: https://user:%s@cp\nconnector_name: a\n",
		"control_plane_url: https://cp\nconnector_name: a\nproxy_url: http://proxy:%s@p:3128\n",
		"control_plane_url: https://cp\nconnector_name: a\nproxy_url: socks5://u:%s@p:1080\n",
		"control_plane_url: https://cp/%s\nconnector_name: a\n",
		// a secret as a key, in a nested value, in the wrong shape
		"control_plane_url: https://cp\n%s: 1\n",
		"control_plane_url: https://cp\nconnector_name: [%s]\n",
		"control_plane_url: https://cp\nconnector_name: {x: %s}\n",
		"control_plane_url: https://cp\nextra:\n  nested: %s\n",
		// YAML syntax errors around a secret
		"control_plane_url: \"%s\n",
		"control_plane_url: '%s\n",
		"connector_name: [%s\n",
		"connector_name: {%s\n",
		"connector_name: %s\n  bad: [\n",
		"connector_name: *%s\n",
		"connector_name: !%s x\n",
		"connector_name: &%s x\nproxy_url: *nope\n",
		"\t%s: 1\n",
		"connector_name: a\n%s\n",
		"connector_name: |%s\n",
		"- %s\nconnector_name: a\n",
		"connector_name: \"\\q%s\"\n",
	}
	for i := 0; i < 400; i++ {
		secret := g.secret()
		tmpl := templates[i%len(templates)]
		body := strings.Replace(tmpl, "%s", secret, 1)
		_, err := Load(writeConfig(t, body), env(nil))
		if err == nil {
			continue
		}
		if part, ok := leaks(err.Error(), secret); ok {
			t.Errorf("config\n%s\nerror repeats %q of the secret:\n%v", body, part, err)
		}
	}
	// The same through every environment override.
	for _, name := range []string{EnvControlPlaneURL, EnvCAFile, EnvConnectorName, EnvAllowedTargets, EnvProxyURL, EnvDrainTimeout} {
		for i := 0; i < 20; i++ {
			secret := g.secret()
			for _, v := range []string{secret, "socks5://u:" + secret + "@p:1080", "http://" + secret + "@p:3128/x", "10.0.0.0/8," + secret} {
				_, err := Load("", env(map[string]string{EnvControlPlaneURL: "https://cp", EnvConnectorName: "a", name: v}))
				if err == nil {
					continue
				}
				if part, ok := leaks(err.Error(), secret); ok {
					t.Errorf("%s=%q: error repeats %q of the secret:\n%v", name, v, part, err)
				}
			}
		}
	}
}
