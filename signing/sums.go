package signing

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// SumsFile is the name of the checksum list in a release directory.
const SumsFile = "SHA256SUMS"

// Sums maps a file name (no directory) to its digest.
type Sums map[string]Digest

// Marshal returns the list in sha256sum's format ("<hex>  <name>\n"),
// sorted by name, so `sha256sum -c SHA256SUMS` checks it.
func (s Sums) Marshal() []byte {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", s[n].Hex(), n)
	}
	return b.Bytes()
}

// ParseSums reads sha256sum output (text "  " or binary " *" mode).
func ParseSums(data []byte) (Sums, error) {
	s := Sums{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		t := sc.Text()
		if t == "" {
			continue
		}
		hexSum, name, ok := strings.Cut(t, " ")
		if !ok || len(name) < 2 || (name[0] != ' ' && name[0] != '*') {
			return nil, fmt.Errorf("%s line %d: want \"<sha256>  <file>\"", SumsFile, line)
		}
		name = name[1:]
		sum, err := hex.DecodeString(hexSum)
		if err != nil || len(sum) != 32 {
			return nil, fmt.Errorf("%s line %d: %q is not a SHA-256 in hex", SumsFile, line, hexSum)
		}
		if name != filepath.Base(name) || name == "." || name == ".." {
			return nil, fmt.Errorf("%s line %d: %q is not a plain file name", SumsFile, line, name)
		}
		if _, dup := s[name]; dup {
			return nil, fmt.Errorf("%s line %d: %s listed twice", SumsFile, line, name)
		}
		s[name] = Digest{Sum: sum}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("%s lists no files", SumsFile)
	}
	return s, nil
}
