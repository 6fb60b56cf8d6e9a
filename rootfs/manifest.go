package rootfs

import (
	"bufio"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// files holds the package manifest, the kernel module allowlist, the
// initramfs additions and the overlay, so the builder works from any
// directory (the Packer plugin calls it too).
//
//go:embed packages.txt modules.txt initramfs overlay
var files embed.FS

// stageVersion changes when the package stage's recipe (packages.go)
// changes in a way the hashed inputs do not show.
const stageVersion = "vaultpam-packages-v1"

// Packages returns the package names of packages.txt, in file order.
func Packages() ([]string, error) {
	data, err := files.ReadFile("packages.txt")
	if err != nil {
		return nil, err
	}
	return parseManifest(string(data))
}

func parseManifest(text string) ([]string, error) {
	var pkgs []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if strings.ContainsAny(line, " \t,") {
			return nil, fmt.Errorf("packages.txt:%d: one package per line, got %q", n, line)
		}
		if seen[line] {
			return nil, fmt.Errorf("packages.txt:%d: %s listed twice", n, line)
		}
		seen[line] = true
		pkgs = append(pkgs, line)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("packages.txt lists no packages")
	}
	return pkgs, nil
}

// stageKey hashes everything the package stage depends on: the recipe
// version, the package list, the sources, SOURCE_DATE_EPOCH and the
// initramfs files baked into the initrd.
func stageKey(o Options, pkgs []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%d\n", stageVersion, o.Suite, o.Mirror, o.SourceDateEpoch)
	for _, s := range o.ExtraSources {
		fmt.Fprintf(h, "source %s\n", s)
	}
	for _, p := range pkgs {
		fmt.Fprintf(h, "package %s\n", p)
	}
	var paths []string
	err := fs.WalkDir(files, "initramfs", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	for _, p := range paths {
		data, err := files.ReadFile(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "file %s %d\n", p, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
