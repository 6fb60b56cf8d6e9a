package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseToken: whatever a person types, ParseToken either returns the
// canonical form — which parses to itself in every spelling the console
// accepts, and whose every single-character substitution is a typo — or
// an error wrapping one of its sentinels that repeats none of the input
// but the one character it names.
func FuzzParseToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, typed string) {
		canon, err := ParseToken(typed)
		if err != nil {
			if !errors.Is(err, ErrTokenEmpty) && !errors.Is(err, ErrTokenLength) && !errors.Is(err, ErrTokenChar) && !errors.Is(err, ErrTokenTypo) {
				t.Fatalf("ParseToken(%q) = %v, wraps none of the sentinels", typed, err)
			}
			if w, ok := tokenEcho(err.Error(), typed); ok {
				t.Fatalf("ParseToken(%q) = %q, repeats %q of the input", typed, err, w)
			}
			return
		}
		if len(canon) != TokenChars || strings.Trim(canon, tokenAlphabet) != "" || !ValidTokenCheck(canon) {
			t.Fatalf("ParseToken(%q) = %q, not a canonical token", typed, canon)
		}
		spellings := []string{canon, FormatToken(canon), strings.ToLower(FormatToken(canon)),
			strings.ReplaceAll(FormatToken(canon), "-", " "),
			strings.NewReplacer("0", "o", "1", "l").Replace(canon)}
		for _, s := range spellings {
			if got, err := ParseToken(s); got != canon || err != nil {
				t.Fatalf("ParseToken(%q) = %q, %v; want %q (a spelling of %q)", s, got, err, canon, typed)
			}
		}
		p := len(typed) % TokenChars
		for _, c := range []byte(tokenAlphabet) {
			if c == canon[p] {
				continue
			}
			bad := canon[:p] + string(c) + canon[p+1:]
			if _, err := ParseToken(bad); !errors.Is(err, ErrTokenTypo) {
				t.Fatalf("ParseToken(%q with position %d changed) = %v, want ErrTokenTypo", canon, p, err)
			}
		}
	})
}

// tokenMessages is the fixed text of ParseToken's errors: a run of input
// characters found there is the message's own words, not an echo.
var tokenMessages = strings.ToUpper(ErrTokenEmpty.Error() + ErrTokenLength.Error() + ErrTokenChar.Error() + ErrTokenTypo.Error() +
	"character is not one of 0-9, A-Z without I, L, O, U it has characters, a token has (4 groups of 5) the check character does not match; compare it with the dashboard character by character")

// tokenEcho reports a run of 4 letters and digits of the input that msg
// repeats (the one character an error names is quoted alone).
func tokenEcho(msg, typed string) (string, bool) {
	m, in := strings.ToUpper(msg), strings.ToUpper(typed)
	for i := 0; i+4 <= len(in); i++ {
		w := in[i : i+4]
		if strings.Trim(w, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			continue
		}
		if strings.Contains(m, w) && !strings.Contains(tokenMessages, w) && !isDigits(w) {
			return w, true
		}
	}
	return "", false
}

func isDigits(s string) bool { return strings.Trim(s, "0123456789") == "" }

// sizeReader records the largest read asked of it: ReadTunnelFrame reads a
// body into a buffer of exactly the size it allocated.
type sizeReader struct {
	r      *bytes.Reader
	maxBuf int
}

func (s *sizeReader) Read(p []byte) (int, error) {
	s.maxBuf = max(s.maxBuf, len(p))
	return s.r.Read(p)
}

// FuzzTunnelFrame: ReadTunnelFrame refuses a length above MaxMessageFrame
// after reading only the prefix and before allocating for the body
// (allocations do not grow with the claimed size), never asks for a
// buffer larger than the limit, reads exactly one frame, and a message it
// accepts encodes and decodes to itself.
func FuzzTunnelFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		sr := &sizeReader{r: bytes.NewReader(b)}
		var m TunnelMessage
		err := ReadTunnelFrame(sr, &m)
		consumed := len(b) - sr.r.Len()
		if sr.maxBuf > MaxMessageFrame {
			t.Fatalf("ReadTunnelFrame asked for a %d-byte buffer, limit %d", sr.maxBuf, MaxMessageFrame)
		}
		if len(b) < 4 {
			if err == nil {
				t.Fatalf("ReadTunnelFrame(%d bytes) = nil error", len(b))
			}
			return
		}
		n := binary.BigEndian.Uint32(b)
		if n > MaxMessageFrame {
			if !errors.Is(err, ErrFrameTooLarge) || consumed != 4 {
				t.Fatalf("frame of %d bytes: err %v after reading %d bytes; want ErrFrameTooLarge after the 4-byte prefix", n, err, consumed)
			}
			allocs := testing.AllocsPerRun(3, func() {
				ReadTunnelFrame(bytes.NewReader(b[:4]), &m)
			})
			if allocs > 6 {
				t.Fatalf("refusing a frame of %d bytes made %v allocations", n, allocs)
			}
			return
		}
		if err != nil {
			if len(b) >= 4+int(n) && !errors.Is(err, ErrFrameDecode) {
				t.Fatalf("complete frame: err %v, want ErrFrameDecode", err)
			}
			return
		}
		if consumed != 4+int(n) {
			t.Fatalf("ReadTunnelFrame read %d bytes of a %d-byte frame", consumed, 4+n)
		}
		var buf bytes.Buffer
		if err := WriteTunnelFrame(&buf, &m); err != nil {
			return // re-encoding may escape past the limit (\u003c): nothing to compare
		}
		var back TunnelMessage
		if err := ReadTunnelFrame(&buf, &back); err != nil {
			t.Fatalf("reading back %q: %v", buf.Bytes(), err)
		}
		if diff := cmp.Diff(m, back); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if rest, _ := io.ReadAll(&buf); len(rest) != 0 {
			t.Fatalf("%d bytes left after the frame written", len(rest))
		}
	})
}
