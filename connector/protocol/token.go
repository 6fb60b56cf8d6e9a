package protocol

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Enrolment and recovery tokens are typed by hand on a VM console where
// paste may not work, so they are short, case-insensitive, drawn from
// Crockford's base32 alphabet (no I, L, O, U: nothing to confuse with 1 or
// 0) and end in a check character chosen so that the position-weighted sum
// of all 20 character values is 0 mod 37. 37 is prime and larger than the
// alphabet and the weights, so every single mistyped character and every
// swap of two neighbours changes the sum: a typo is reported as a typo, not
// as an unknown token. Shown in groups:
//
//	K7Q2M-XW9HD-3RT5B-NPZ4C
//
// 19 random characters carry about 94.8 bits (draws whose check value would
// fall outside the alphabet are rejected); the 20th is the check character.
const (
	TokenChars      = 20 // characters without separators
	TokenGroup      = 5  // characters per group when shown
	tokenRandChars  = TokenChars - 1
	tokenAlphabet   = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	tokenAlphabetSz = len(tokenAlphabet)
)

// Errors from ParseToken; each is wrapped with the detail for people.
var (
	ErrTokenEmpty  = errors.New("token is empty")
	ErrTokenLength = errors.New("token has the wrong length")
	ErrTokenChar   = errors.New("token has a character that is not allowed")
	ErrTokenTypo   = errors.New("token has a typo")
)

// NewToken returns a fresh random token in canonical form (no separators).
// rand nil means crypto/rand.
func NewToken(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	buf := make([]byte, tokenRandChars)
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

// ParseToken normalises what a person typed — any case, with or without
// dashes or spaces, O for 0 and I or L for 1 — and checks length, alphabet
// and check character. It returns the canonical form (20 characters, upper
// case, no separators). Errors wrap ErrTokenEmpty, ErrTokenLength,
// ErrTokenChar or ErrTokenTypo and never contain the token itself.
func ParseToken(typed string) (string, error) {
	var b strings.Builder
	n := 0
	for _, r := range typed {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r':
			continue
		}
		n++
		c, ok := normaliseTokenRune(r)
		if !ok {
			return "", fmt.Errorf("%w: character %d (%q) is not one of 0-9, A-Z without I, L, O, U", ErrTokenChar, n, r)
		}
		b.WriteByte(c)
	}
	s := b.String()
	switch {
	case len(s) == 0:
		return "", ErrTokenEmpty
	case len(s) != TokenChars:
		return "", fmt.Errorf("%w: it has %d characters, a token has %d (4 groups of 5)", ErrTokenLength, len(s), TokenChars)
	}
	if !ValidTokenCheck(s) {
		return "", fmt.Errorf("%w: the check character does not match; compare it with the dashboard character by character", ErrTokenTypo)
	}
	return s, nil
}

// ValidTokenCheck reports whether canonical token s ends in the right check
// character. s must be canonical (see ParseToken).
func ValidTokenCheck(s string) bool {
	sum, ok := weightedSum(s)
	return ok && len(s) == TokenChars && sum == 0
}

// FormatToken groups a canonical token for display: "K7Q2M-XW9HD-…".
func FormatToken(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if i > 0 && i%TokenGroup == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func normaliseTokenRune(r rune) (byte, bool) {
	if r >= 'a' && r <= 'z' {
		r -= 'a' - 'A'
	}
	switch r {
	case 'O':
		r = '0'
	case 'I', 'L':
		r = '1'
	}
	if r > 0x7f || strings.IndexByte(tokenAlphabet, byte(r)) < 0 {
		return 0, false
	}
	return byte(r), true
}

const checkModulus = 37

// weightedSum returns Σ (i+1)·value(s[i]) mod 37 over canonical s.
func weightedSum(s string) (int, bool) {
	sum := 0
	for i := 0; i < len(s); i++ {
		v := strings.IndexByte(tokenAlphabet, s[i])
		if v < 0 {
			return 0, false
		}
		sum = (sum + (i+1)*v) % checkModulus
	}
	return sum, true
}

// checkChar returns the character that makes the weighted sum of s plus it
// 0 mod 37, and false when that value has no character (≥ 32).
func checkChar(s string) (byte, bool) {
	sum, ok := weightedSum(s)
	if !ok {
		return 0, false
	}
	w := len(s) + 1
	// v·w ≡ -sum (mod 37); w's inverse by Fermat: w^(37-2).
	inv := 1
	for i := 0; i < checkModulus-2; i++ {
		inv = inv * w % checkModulus
	}
	v := (checkModulus - sum) % checkModulus * inv % checkModulus
	if v >= tokenAlphabetSz {
		return 0, false
	}
	return tokenAlphabet[v], true
}
