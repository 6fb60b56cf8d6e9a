package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	for i := 0; i < 200; i++ {
		tok, err := NewToken(nil)
		if err != nil {
			t.Fatal(err)
		}
		typed := strings.ToLower(FormatToken(tok))
		got, err := ParseToken(typed)
		if err != nil || got != tok {
			t.Fatalf("ParseToken(%q) = %q, %v; want %q", typed, got, err, tok)
		}
	}
}

// Every single-character substitution and every swap of two different
// neighbours must be reported as a typo, never accepted.
func TestTokenCatchesTypos(t *testing.T) {
	for i := 0; i < 50; i++ {
		tok, _ := NewToken(nil)
		for p := 0; p < len(tok); p++ {
			for _, c := range tokenAlphabet {
				if byte(c) == tok[p] {
					continue
				}
				bad := tok[:p] + string(c) + tok[p+1:]
				if _, err := ParseToken(bad); !errors.Is(err, ErrTokenTypo) {
					t.Fatalf("ParseToken(substituted %d) err = %v, want ErrTokenTypo", p, err)
				}
			}
			if p+1 < len(tok) && tok[p] != tok[p+1] {
				sw := tok[:p] + string(tok[p+1]) + string(tok[p]) + tok[p+2:]
				if _, err := ParseToken(sw); !errors.Is(err, ErrTokenTypo) {
					t.Fatalf("ParseToken(swapped %d) err = %v, want ErrTokenTypo", p, err)
				}
			}
		}
	}
}

func TestTokenNormalisesLookalikes(t *testing.T) {
	tok := "0000000000000000001" // 19 chars
	c, ok := checkChar(tok)
	if !ok {
		t.Fatal("no check character for fixture")
	}
	tok += string(c)
	typed := strings.NewReplacer("0", "o", "1", "l").Replace(FormatToken(tok))
	if got, err := ParseToken(typed); err != nil || got != tok {
		t.Fatalf("ParseToken(%q) = %q, %v; want %q", typed, got, err, tok)
	}
}

func TestTokenErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrTokenEmpty},
		{"  - ", ErrTokenEmpty},
		{"ABCDE-FGHJK", ErrTokenLength},
		{"ABCDE-FGHJK-MNPQR-STVWX-YZ", ErrTokenLength},
		{"ABCDE-FGHJK-MNPQR-STVWU", ErrTokenChar},
		{"ABCDE-FGHJK-MNPQR-STVW!", ErrTokenChar},
	} {
		if _, err := ParseToken(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("ParseToken(%q) err = %v, want %v", tc.in, err, tc.want)
		}
	}
}
