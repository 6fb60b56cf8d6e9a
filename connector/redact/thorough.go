package redact

import (
	"bytes"
	"regexp"
	"strings"

	"github.com/vaultpam/appliance/connector/protocol"
)

// Redacted replaces every secret Thorough finds.
const Redacted = "[REDACTED]"

// Thorough removes every secret it can recognise from text before it
// leaves the appliance in a support bundle. It is stronger than String
// (which guards the connector's own output and must not hide identifiers
// people read there) and so hides more than secrets now and then:
//
//   - enrolment and recovery tokens: 20 characters of the token alphabet
//     (any case, O/I/L for 0/1), with or without "-" or " " between the
//     groups of 5, whether or not the check character matches (a token
//     with one typo is still 19 characters of the real one), unless the
//     check fails and it has no digit or no letter (a long word);
//   - PEM private keys: any "-----BEGIN … PRIVATE KEY…-----" block, up to
//     its END line (or to the end of the text when the END is missing);
//     age secret keys (AGE-SECRET-KEY-1…);
//   - passwords in URLs (scheme://user:PASSWORD@host);
//   - Authorization and Proxy-Authorization headers (the rest of the line);
//   - values of fields named like secrets (token, password, secret,
//     private, credential, passphrase, psk, key, authorization, cookie…)
//     in JSON ("name": value), in INI, YAML and systemd units at the start
//     of a line (Name=value, name: value), and inline in log lines
//     (name=value, name: value; there without "key", too common inline).
//
// It returns the redacted copy (b is not modified) and how many secrets it
// replaced, each by Redacted. Safe for concurrent use.

var (
	pemPrivateRE = regexp.MustCompile(`(?s)-----BEGIN ([A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*)-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*-----|\z)`)
	ageSecretRE  = regexp.MustCompile(`(?i)AGE-SECRET-KEY-1[0-9A-Z]+`)
	authHeaderRE = regexp.MustCompile(`(?i)\b((?:proxy-)?authorization["']?\s*[:=]\s*)([^\r\n]+)`)
	urlPassRE    = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:"']*):([^\s/?#@"']*)@`)
	jsonFieldRE  = regexp.MustCompile(`(?i)("[^"\\]*(?:` + secretWords + `)[^"\\]*"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)`)
	lineFieldRE  = regexp.MustCompile(`(?im)^(\s*[-\w.]*(?:` + secretWords + `)[-\w.]*\s*[:=][ \t]*)(\S[^\r\n]*)`)
	inlineKVRE   = regexp.MustCompile(`(?i)\b([\w.-]*(?:` + inlineSecretWords + `)[\w.-]*(?:=|:[ \t]*))("(?:[^"\\]|\\.)*"|[^\s,;]+)`)
)

// secretWords make a field name a secret's; inlineSecretWords are the
// ones safe to look for inside log lines.
const (
	inlineSecretWords = `token|password|passwd|secret|private|preshared|credential|passphrase|psk|apikey|api_key|cookie`
	secretWords       = inlineSecretWords + `|key|authorization`
)

func Thorough(b []byte) ([]byte, int) {
	n := 0
	count := func(re *regexp.Regexp, b []byte, repl func([][]byte) []byte) []byte {
		return re.ReplaceAllFunc(b, func(m []byte) []byte {
			n++
			return repl(re.FindSubmatch(m))
		})
	}
	b = count(pemPrivateRE, b, func(sub [][]byte) []byte { return []byte(Redacted + " (" + string(sub[1]) + ")") })
	b = count(ageSecretRE, b, func([][]byte) []byte { return []byte(Redacted) })
	b = count(authHeaderRE, b, func(sub [][]byte) []byte { return join(sub[1], Redacted) })
	b = count(urlPassRE, b, func(sub [][]byte) []byte { return join(sub[1], ":"+Redacted+"@") })
	b = count(jsonFieldRE, b, func(sub [][]byte) []byte {
		if bytes.Contains(sub[2], []byte(Redacted)) {
			n--
			return sub[0]
		}
		return join(sub[1], `"`+Redacted+`"`)
	})
	b = count(lineFieldRE, b, func(sub [][]byte) []byte {
		if bytes.HasPrefix(sub[2], []byte(Redacted)) || bytes.HasPrefix(sub[2], []byte(`"`+Redacted)) {
			n--
			return sub[0]
		}
		return join(sub[1], Redacted)
	})
	b = count(inlineKVRE, b, func(sub [][]byte) []byte {
		if bytes.Contains(sub[2], []byte(Redacted)) {
			n--
			return sub[0]
		}
		return join(sub[1], Redacted)
	})
	var m int
	b, m = redactTokens(b)
	return b, n + m
}

func join(a []byte, s string) []byte {
	out := make([]byte, 0, len(a)+len(s))
	return append(append(out, a...), s...)
}

// redactTokens replaces every token-shaped run (see Thorough).
func redactTokens(b []byte) ([]byte, int) {
	var out []byte
	n, last := 0, 0
	for i := 0; i < len(b); i++ {
		if i > 0 && isAlnum(b[i-1]) || !isAlnum(b[i]) {
			continue
		}
		end, ok := tokenAt(b, i)
		if !ok {
			continue
		}
		out = append(append(out, b[last:i]...), Redacted...)
		last, n = end, n+1
		i = end - 1
	}
	if n == 0 {
		return b, 0
	}
	return append(out, b[last:]...), n
}

// tokenAt reports whether a token-shaped run starts at b[i] and where it
// ends: 4 groups of 5 alphanumerics, optionally separated by one "-" or
// " ", not followed by another alphanumeric.
func tokenAt(b []byte, i int) (int, bool) {
	var canon strings.Builder
	j := i
	for g := 0; g < 4; g++ {
		if g > 0 && j < len(b) && (b[j] == '-' || b[j] == ' ') && j+1 < len(b) && isAlnum(b[j+1]) {
			j++
		}
		for k := 0; k < 5; k++ {
			if j >= len(b) || !isAlnum(b[j]) {
				return 0, false
			}
			canon.WriteByte(b[j])
			j++
		}
	}
	if j < len(b) && isAlnum(b[j]) {
		return 0, false
	}
	s := canon.String()
	if _, err := protocol.ParseToken(s); err == nil {
		return j, true
	}
	// A token with a typo: token characters only, letters and digits mixed.
	digit, letter := false, false
	for _, c := range strings.ToUpper(s) {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTVWXYZ", c): // no U
			letter = true
		default:
			return 0, false
		}
	}
	return j, digit && letter
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
