package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestUserCodeRoundTrip(t *testing.T) {
	for range 500 {
		code, err := NewUserCode(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != UserCodeChars {
			t.Fatalf("NewUserCode = %q, want %d characters", code, UserCodeChars)
		}
		shown := FormatUserCode(code)
		if len(shown) != UserCodeChars+1 || shown[UserCodeGroup] != '-' {
			t.Fatalf("FormatUserCode(%q) = %q, want XXXX-XXXX", code, shown)
		}
		for _, typed := range []string{shown, strings.ToLower(shown), code, " " + shown[:4] + " " + shown[5:] + "\n"} {
			got, err := ParseUserCode(typed)
			if err != nil || got != code {
				t.Fatalf("ParseUserCode(%q) = %q, %v; want %q", typed, got, err, code)
			}
		}
	}
}

// Every single-character substitution and every swap of two different
// neighbours is reported as a typo: the approval page says "typo", not
// "unknown code".
func TestUserCodeCatchesTypos(t *testing.T) {
	for range 100 {
		code, _ := NewUserCode(nil)
		for p := range len(code) {
			for _, c := range tokenAlphabet {
				if byte(c) == code[p] {
					continue
				}
				bad := code[:p] + string(c) + code[p+1:]
				if _, err := ParseUserCode(bad); !errors.Is(err, ErrUserCodeTypo) {
					t.Fatalf("ParseUserCode(substituted %d) err = %v, want ErrUserCodeTypo", p, err)
				}
			}
			if p+1 < len(code) && code[p] != code[p+1] {
				sw := code[:p] + string(code[p+1]) + string(code[p]) + code[p+2:]
				if _, err := ParseUserCode(sw); !errors.Is(err, ErrUserCodeTypo) {
					t.Fatalf("ParseUserCode(swapped %d) err = %v, want ErrUserCodeTypo", p, err)
				}
			}
		}
	}
}

func TestUserCodeErrors(t *testing.T) {
	long := strings.Repeat("A", 1000)
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrUserCodeEmpty},
		{" - ", ErrUserCodeEmpty},
		{"ABCD", ErrUserCodeLength},
		{"ABCD-EFGH-J", ErrUserCodeLength},
		{long, ErrUserCodeLength},
		{"ABCD-EFGU", ErrUserCodeChar},
		{"ABCD-EFG!", ErrUserCodeChar},
		{"ÄBCD-EFGH", ErrUserCodeChar},
	} {
		if _, err := ParseUserCode(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("ParseUserCode(%q) err = %v, want %v", tc.in, err, tc.want)
		}
	}
	// A token is not a user code.
	tok, _ := NewToken(nil)
	if _, err := ParseUserCode(tok); !errors.Is(err, ErrUserCodeLength) {
		t.Errorf("ParseUserCode(a token) err = %v, want ErrUserCodeLength", err)
	}
}

func TestUserCodeLookalikes(t *testing.T) {
	code := "0000001"
	c, ok := checkChar(code)
	if !ok {
		t.Fatal("no check character for the fixture")
	}
	code += string(c)
	typed := strings.NewReplacer("0", "o", "1", "l").Replace(FormatUserCode(code))
	if got, err := ParseUserCode(typed); err != nil || got != code {
		t.Fatalf("ParseUserCode(%q) = %q, %v; want %q", typed, got, err, code)
	}
}

func TestDeviceCode(t *testing.T) {
	a, err := NewDeviceCode(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewDeviceCode(nil)
	if a == b || len(a) != 43 || !ValidDeviceCode(a) {
		t.Fatalf("NewDeviceCode = %q, %q; want two different 43-character codes", a, b)
	}
	fixed, _ := NewDeviceCode(bytes.NewReader(make([]byte, 32)))
	if fixed != strings.Repeat("A", 43) {
		t.Errorf("NewDeviceCode(zeros) = %q, want 43 A", fixed)
	}
	for _, bad := range []string{"", "short", a + "A", strings.Repeat("*", 43)} {
		if ValidDeviceCode(bad) {
			t.Errorf("ValidDeviceCode(%q) = true", bad)
		}
	}
}

func TestPairPageURL(t *testing.T) {
	for _, tc := range []struct{ base, code, want string }{
		{"https://cp.example.com", "", "https://cp.example.com/pair"},
		{"https://10.0.2.100:8443/", "K7Q2MXW9", "https://10.0.2.100:8443/pair?code=K7Q2-MXW9"},
	} {
		if got := PairPageURL(tc.base, tc.code); got != tc.want {
			t.Errorf("PairPageURL(%q, %q) = %q, want %q", tc.base, tc.code, got, tc.want)
		}
	}
}
