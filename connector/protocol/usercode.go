package protocol

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Pairing user codes (pair.go) are what an administrator reads off a VM
// console, or scans, and types into the approval page: 8 characters of the
// token alphabet — 7 random and a check character by the same rule as the
// token's (position-weighted sum of all 8 values ≡ 0 mod 37), so a typo is
// reported as a typo, not as an unknown code. Shown as two groups of 4,
// read in any case, O for 0 and I or L for 1:
//
//	K7Q2-MXW9
//
// 7 random characters carry about 34.8 bits (draws whose check value falls
// outside the alphabet are rejected). That is enough because a code lives
// 10 minutes, works once, is bound to one pairing, and guesses are rate
// limited by the control plane. A user code is public: it may be shown,
// printed and logged. The pairing's device code is the secret.
const (
	UserCodeChars = 8 // characters without the separator
	UserCodeGroup = 4 // characters per group when shown
)

// Errors from ParseUserCode; each is wrapped with the detail for people.
var (
	ErrUserCodeEmpty  = errors.New("code is empty")
	ErrUserCodeLength = errors.New("code has the wrong length")
	ErrUserCodeChar   = errors.New("code has a character that is not allowed")
	ErrUserCodeTypo   = errors.New("code has a typo")
)

// NewUserCode returns a fresh random user code in canonical form (8
// characters, no separator). rand nil means crypto/rand.
func NewUserCode(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	buf := make([]byte, UserCodeChars-1)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("reading randomness: %w", err)
		}
		var b strings.Builder
		for _, v := range buf {
			b.WriteByte(tokenAlphabet[int(v)%tokenAlphabetSz]) // 256 % 32 == 0: unbiased
		}
		s := b.String()
		if c, ok := checkChar(s); ok {
			return s + string(c), nil
		}
	}
}

// ParseUserCode normalises a typed or scanned user code — any case, with
// or without the dash or spaces, O for 0 and I or L for 1 — and checks
// length, alphabet and check character. It returns the canonical form.
// Errors wrap ErrUserCodeEmpty, ErrUserCodeLength, ErrUserCodeChar or
// ErrUserCodeTypo.
func ParseUserCode(typed string) (string, error) {
	var b strings.Builder
	n := 0
	for _, r := range typed {
		if r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			continue
		}
		n++
		if n > 4*UserCodeChars {
			return "", fmt.Errorf("%w: it has more than %d characters, a code has %d (2 groups of 4)", ErrUserCodeLength, 4*UserCodeChars, UserCodeChars)
		}
		c, ok := normaliseTokenRune(r)
		if !ok {
			return "", fmt.Errorf("%w: character %d is not one of 0-9, A-Z without I, L, O, U", ErrUserCodeChar, n)
		}
		b.WriteByte(c)
	}
	s := b.String()
	switch {
	case len(s) == 0:
		return "", ErrUserCodeEmpty
	case len(s) != UserCodeChars:
		return "", fmt.Errorf("%w: it has %d characters, a code has %d (2 groups of 4)", ErrUserCodeLength, len(s), UserCodeChars)
	}
	if sum, ok := weightedSum(s); !ok || sum != 0 {
		return "", fmt.Errorf("%w: the check character does not match; compare it with the console character by character", ErrUserCodeTypo)
	}
	return s, nil
}

// FormatUserCode groups a canonical user code for display: "K7Q2-MXW9".
func FormatUserCode(s string) string {
	if len(s) != UserCodeChars {
		return s
	}
	return s[:UserCodeGroup] + "-" + s[UserCodeGroup:]
}
