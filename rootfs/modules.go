package rootfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Modules returns the kernel modules kept in the image (modules.txt), in
// file order, with '-' spelled '_' as modprobe does.
func Modules() ([]string, error) {
	data, err := files.ReadFile("modules.txt")
	if err != nil {
		return nil, err
	}
	return parseModuleList(string(data))
}

func parseModuleList(text string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.ContainsAny(line, " \t,/") || strings.HasSuffix(line, ".ko") {
			return nil, fmt.Errorf("modules.txt:%d: one module name per line (as modprobe spells it), got %q", n, line)
		}
		name := moduleName(line)
		if seen[name] {
			return nil, fmt.Errorf("modules.txt:%d: %s listed twice", n, line)
		}
		seen[name] = true
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, errors.New("modules.txt lists no modules")
	}
	return names, nil
}

// moduleName turns a module file name or a modprobe name into the name the
// kernel uses: no directory, no .ko(.xz|.zst|.gz) suffix, '-' as '_'.
func moduleName(s string) string {
	s = filepath.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// kernelModules is what depmod wrote for one kernel in a tree.
type kernelModules struct {
	version string
	dir     string              // <tree>/usr/lib/modules/<version>
	path    map[string]string   // name → path relative to dir
	deps    map[string][]string // name → names it needs (modules.dep)
	soft    map[string][]string // name → names or aliases it loads too (modules.softdep)
	alias   map[string][]string // exact alias → names (modules.alias, no wildcards)
	builtin map[string]bool     // names built into the kernel (modules.builtin)
}

// ModuleStats says what pruning kept.
type ModuleStats struct {
	Version              string
	Kept, Removed        int
	KeptBytes, AllBytes  int64
	Builtin, NotInKernel []string // allowlisted names built in (fine) or absent (an error)
}

// pruneModules deletes from tree every module of its one kernel that allow
// does not name, directly or as a dependency or softdep of a named module,
// and regenerates the depmod files with depmod(version) (run against the
// tree). The result depends only on the tree and allow, so the same inputs
// give the same files.
func pruneModules(ctx context.Context, tree string, allow []string, depmod func(ctx context.Context, version string) error) (ModuleStats, error) {
	km, err := readKernelModules(tree)
	if err != nil {
		return ModuleStats{}, err
	}
	st := ModuleStats{Version: km.version}
	keep := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		if keep[name] {
			return
		}
		if _, ok := km.path[name]; !ok {
			return
		}
		keep[name] = true
		for _, d := range km.deps[name] {
			visit(d)
		}
		for _, s := range km.soft[name] {
			if _, ok := km.path[s]; ok {
				visit(s)
				continue
			}
			for _, n := range km.alias[s] {
				visit(n)
			}
		}
	}
	for _, name := range allow {
		switch _, ok := km.path[name]; {
		case ok:
			visit(name)
		case km.builtin[name]:
			st.Builtin = append(st.Builtin, name)
		default:
			st.NotInKernel = append(st.NotInKernel, name)
		}
	}
	if len(st.NotInKernel) > 0 {
		return st, fmt.Errorf("modules.txt names modules kernel %s does not have: %s\nhint: check the spelling with `modinfo -k %s NAME` in the tree, or remove them",
			km.version, strings.Join(st.NotInKernel, ", "), km.version)
	}

	names := make([]string, 0, len(km.path))
	for n := range km.path {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(km.dir, km.path[n])
		fi, err := os.Lstat(p)
		if err != nil {
			return st, fmt.Errorf("module %s: %w", n, err)
		}
		st.AllBytes += fi.Size()
		if keep[n] {
			st.Kept++
			st.KeptBytes += fi.Size()
			continue
		}
		if err := os.Remove(p); err != nil {
			return st, err
		}
		st.Removed++
	}
	if err := removeEmptyDirs(filepath.Join(km.dir, "kernel")); err != nil {
		return st, err
	}
	if err := filterModulesOrder(km, keep); err != nil {
		return st, err
	}
	if err := depmod(ctx, km.version); err != nil {
		return st, fmt.Errorf("depmod %s: %w", km.version, err)
	}
	return st, nil
}

// readKernelModules reads the depmod files of the single kernel in tree.
func readKernelModules(tree string) (*kernelModules, error) {
	dirs, _ := filepath.Glob(filepath.Join(tree, "usr/lib/modules/*"))
	if len(dirs) != 1 {
		return nil, fmt.Errorf("want one kernel in %s/usr/lib/modules, found %d", tree, len(dirs))
	}
	km := &kernelModules{
		version: filepath.Base(dirs[0]), dir: dirs[0],
		path: map[string]string{}, deps: map[string][]string{}, soft: map[string][]string{},
		alias: map[string][]string{}, builtin: map[string]bool{},
	}
	err := eachLine(filepath.Join(km.dir, "modules.dep"), func(line string) error {
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("modules.dep: malformed line %q", line)
		}
		name := moduleName(mod)
		km.path[name] = mod
		for _, d := range strings.Fields(deps) {
			km.deps[name] = append(km.deps[name], moduleName(d))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading modules.dep of %s (does the kernel package run depmod?): %w", km.version, err)
	}
	if err := eachLine(filepath.Join(km.dir, "modules.builtin"), func(line string) error {
		km.builtin[moduleName(line)] = true
		return nil
	}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// softdep NAME pre: a b post: c
	if err := eachLine(filepath.Join(km.dir, "modules.softdep"), func(line string) error {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "softdep" {
			return nil
		}
		name := moduleName(f[1])
		for _, s := range f[2:] {
			if s != "pre:" && s != "post:" {
				km.soft[name] = append(km.soft[name], moduleName(s))
			}
		}
		return nil
	}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// alias ALIAS NAME; only exact aliases (softdeps name crypto-crc32c,
	// crct10dif, …), never patterns.
	if err := eachLine(filepath.Join(km.dir, "modules.alias"), func(line string) error {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" || strings.ContainsAny(f[1], "*?[") {
			return nil
		}
		a := moduleName(f[1])
		km.alias[a] = append(km.alias[a], moduleName(f[2]))
		return nil
	}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return km, nil
}

// eachLine calls f for every non-empty, non-comment line of path.
func eachLine(path string, f func(string) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := f(line); err != nil {
			return err
		}
	}
	return sc.Err()
}

// filterModulesOrder keeps the modules.order lines of kept modules, so
// depmod does not look for the deleted ones.
func filterModulesOrder(km *kernelModules, keep map[string]bool) error {
	p := filepath.Join(km.dir, "modules.order")
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if keep[moduleName(line)] {
			out.WriteString(line + "\n")
		}
	}
	return os.WriteFile(p, []byte(out.String()), 0o644)
}

// removeEmptyDirs removes the directories below root (root included) that
// hold no file any more.
func removeEmptyDirs(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- { // children before parents
		entries, err := os.ReadDir(dirs[i])
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			if err := os.Remove(dirs[i]); err != nil {
				return err
			}
		}
	}
	return nil
}
