// Package redact is the last line of defence against secrets in what the
// connector prints: String hides anything shaped like an enrolment token
// and the user-info (user:password@) of URLs; Writer applies it to every
// write, and the connector's stdout, stderr and log go through one.
//
// It is a safety net, not the rule: error messages are written never to
// repeat a configuration value, a token or a password in the first place
// (package config, connector/README.md, "Threat model").
package redact

import (
	"io"
	"regexp"
	"strings"

	"github.com/vaultpam/appliance/connector/protocol"
)

// Placeholders that replace what is hidden.
const (
	Token    = "[token hidden]"
	UserInfo = "[user-info hidden]@"
)

var (
	// grouped is a token as the dashboard shows it: 4 groups of 5,
	// separated by dashes or spaces. Hidden whether or not its check
	// character is right (a token with a typo is still a token).
	grouped = regexp.MustCompile(`(?i)\b[0-9a-z]{5}[- ][0-9a-z]{5}[- ][0-9a-z]{5}[- ][0-9a-z]{5}\b`)
	// bare is 20 characters in a row; hidden when it parses as a token
	// (right check character), so identifiers are not hidden by chance
	// more often than 1 in 37.
	bare = regexp.MustCompile(`(?i)\b[0-9a-z]{20}\b`)
	// userInfo is the user[:password]@ of a URL.
	userInfo = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s"'<>]+@`)
)

// String returns s with token-shaped words and URL user-info hidden.
func String(s string) string {
	if s == "" {
		return s
	}
	s = grouped.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Count(m, "-")+strings.Count(m, " ") == 3 {
			return Token
		}
		return m
	})
	s = bare.ReplaceAllStringFunc(s, func(m string) string {
		if _, err := protocol.ParseToken(m); err == nil {
			return Token
		}
		return m
	})
	return userInfo.ReplaceAllString(s, "${1}"+UserInfo)
}

// Writer returns a writer that writes String of every write to w. It
// assumes each write is a whole message (as fmt.Fprintf and log/slog
// handlers do), so a secret is never split across two writes.
func Writer(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return &writer{w}
}

type writer struct{ w io.Writer }

func (r *writer) Write(p []byte) (int, error) {
	s := String(string(p))
	if _, err := io.WriteString(r.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
