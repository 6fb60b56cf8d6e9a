package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vaultpam/appliance/connector/protocol"
)

// SecretError lists the fields of a config that hold secrets. Nothing
// else is checked until they are gone.
type SecretError struct{ Errs []error }

func (e *SecretError) Error() string { return errors.Join(e.Errs...).Error() }

// Unwrap returns the single problems.
func (e *SecretError) Unwrap() []error { return e.Errs }

// secretWords make a field name look like it holds a secret.
var secretWords = []string{"token", "password", "passwd", "secret", "private", "key", "credential", "passphrase"}

const secretHint = "configuration is deployment-owned and must not hold secrets: hand the enrolment token to the connector with PAM_ENROLMENT_TOKEN, --token-file or the console; private keys are generated and kept under PAM_AGENT_DATA_DIR"

// secretsInNode walks a YAML node and reports fields that are named like
// secrets or hold secret-looking values. path is the field's dotted name.
func secretsInNode(path string, n *yaml.Node) []error {
	var errs []error
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if secretName(k.Value) {
				errs = append(errs, fmt.Errorf("%s (line %d): a field named like a secret is not allowed; %s", p, k.Line, secretHint))
				continue
			}
			errs = append(errs, secretsInNode(p, v)...)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			errs = append(errs, secretsInNode(fmt.Sprintf("%s[%d]", path, i), v)...)
		}
	case yaml.ScalarNode:
		if err := secretInValue(path, n.Value); err != nil {
			errs = append(errs, fmt.Errorf("%w (line %d)", err, n.Line))
		}
	}
	return errs
}

func secretName(k string) bool {
	k = strings.ToLower(k)
	if k == "control_plane_ca_file" { // "ca" is fine; guard against "key" matches below
		return false
	}
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// secretInValue reports whether v looks like a secret: an enrolment token,
// PEM private key material, or a URL with a password. The error names the
// field but never repeats the value.
func secretInValue(field, v string) error {
	switch {
	case hasPrivateKey(v):
		return fmt.Errorf("%s: holds a PEM private key; %s", field, secretHint)
	case looksLikeToken(v):
		return fmt.Errorf("%s: holds what looks like an enrolment token; %s", field, secretHint)
	}
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return fmt.Errorf("%s: URL contains a password; put proxy credentials in the PAM_PROXY_URL environment variable (from your secret store), not in the config file", field)
		}
	}
	return nil
}

func hasPrivateKey(v string) bool {
	return strings.Contains(v, "-----BEGIN") && strings.Contains(v, "PRIVATE KEY")
}

// looksLikeToken is true when v, written as a token is shown (20
// characters, or 4 groups of 5), passes the token check character.
func looksLikeToken(v string) bool {
	s := strings.TrimSpace(v)
	if len(s) != protocol.TokenChars && len(s) != protocol.TokenChars+3 {
		return false
	}
	_, err := protocol.ParseToken(s)
	return err == nil
}
