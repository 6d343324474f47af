package integrity

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	debversion "github.com/knqyf263/go-deb-version"

	"github.com/vouch-dev/vouch/internal/pkgdb"
)

// pathRule is a dpkg --path-exclude or --path-include option.
type pathRule struct {
	exclude bool
	pattern string
}

// dpkgPathRules reads path-exclude/path-include from etc/dpkg/dpkg.cfg and
// etc/dpkg/dpkg.cfg.d/* (names of letters, digits, '_' and '-', as dpkg and
// debsums read them), in the order dpkg applies them.
func dpkgPathRules(fsys fs.FS) []pathRule {
	var files []string
	if entries, err := fs.ReadDir(fsys, "etc/dpkg/dpkg.cfg.d"); err == nil {
		for _, e := range entries {
			if validCfgName(e.Name()) {
				files = append(files, "etc/dpkg/dpkg.cfg.d/"+e.Name())
			}
		}
	}
	sort.Strings(files)
	files = append(files, "etc/dpkg/dpkg.cfg")
	var rules []pathRule
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' {
				continue
			}
			line = strings.TrimPrefix(line, "--")
			name, val, ok := strings.Cut(line, "=")
			if !ok {
				name, val, _ = strings.Cut(line, " ")
			}
			name, val = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(val), `"'`)
			switch name {
			case "path-exclude":
				rules = append(rules, pathRule{true, val})
			case "path-include":
				rules = append(rules, pathRule{false, val})
			}
		}
	}
	return rules
}

func validCfgName(n string) bool {
	if n == "" {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// excluded applies the rules to "/"+rel: the last matching rule wins.
func excluded(rules []pathRule, rel string) bool {
	p := "/" + rel
	ex := false
	for _, r := range rules {
		if fnmatch(r.pattern, p) {
			ex = r.exclude
		}
	}
	return ex
}

// fnmatch is fnmatch(3) without flags, as dpkg and debsums call it: '*' and '?'
// match any character including '/', '[...]' is a bracket expression, '\'
// escapes.
func fnmatch(pattern, name string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 0 && pattern[0] == '*' {
				pattern = pattern[1:]
			}
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if fnmatch(pattern, name[i:]) {
					return true
				}
			}
			return false
		case '?':
			if name == "" {
				return false
			}
			pattern, name = pattern[1:], name[1:]
		case '[':
			if name == "" {
				return false
			}
			ok, rest, valid := matchBracket(pattern, name[0])
			if !valid {
				if name[0] != '[' {
					return false
				}
				pattern, name = pattern[1:], name[1:]
				continue
			}
			if !ok {
				return false
			}
			pattern, name = rest, name[1:]
		case '\\':
			if len(pattern) > 1 {
				pattern = pattern[1:]
			}
			fallthrough
		default:
			if name == "" || name[0] != pattern[0] {
				return false
			}
			pattern, name = pattern[1:], name[1:]
		}
	}
	return name == ""
}

func matchBracket(p string, c byte) (matched bool, rest string, valid bool) {
	i := 1
	neg := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		neg = true
		i++
	}
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return matched != neg, p[i+1:], true
		}
		first = false
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		hi := lo
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
		i++
	}
	return false, "", false
}

// replaces reports whether a Replaces field names p (with a version relation
// p's version satisfies, when there is one), as debsums' is_replaced reads it.
func replaces(field string, p *pkgdb.Package) bool {
	for _, item := range strings.Split(field, ",") {
		item = strings.TrimSpace(item)
		name, rel, _ := strings.Cut(item, " ")
		name, _, _ = strings.Cut(name, ":")
		if name != p.Name {
			continue
		}
		rel = strings.TrimSpace(rel)
		if rel == "" {
			return true
		}
		rel = strings.TrimSuffix(strings.TrimPrefix(rel, "("), ")")
		op, ver, ok := strings.Cut(strings.TrimSpace(rel), " ")
		if !ok {
			// "(>=1.0)" without a space
			i := strings.IndexFunc(rel, func(r rune) bool { return !strings.ContainsRune("<>=", r) })
			if i <= 0 {
				continue
			}
			op, ver = rel[:i], rel[i:]
		}
		if satisfies(p.Version, op, strings.TrimSpace(ver)) {
			return true
		}
	}
	return false
}

func satisfies(have, op, want string) bool {
	a, err1 := debversion.NewVersion(have)
	b, err2 := debversion.NewVersion(want)
	if err1 != nil || err2 != nil {
		return false
	}
	c := a.Compare(b)
	switch op {
	case "<<", "<":
		return c < 0
	case "<=":
		return c <= 0
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case ">>", ">":
		return c > 0
	}
	return false
}

// systemDirs are where executables live; lib* and usr/lib* directories are
// found at the top of the root and of usr.
var systemDirs = []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin", "usr/libexec", "usr/local/libexec"}

// unowned walks the system executable directories for executable regular files
// no package records.
func (v *verifier) unowned(ctx context.Context) error {
	if v.owners == nil {
		v.loadDpkgMeta()
	}
	owned := map[string]bool{}
	addOwned := func(p string) {
		rel := strings.TrimPrefix(path.Clean(p), "/")
		if rel == "" || rel == "." {
			return
		}
		owned[v.tree.resolveParent(rel)] = true
	}
	for p := range v.owners {
		addOwned(p)
	}
	for i := range v.inv.Packages {
		pk := &v.inv.Packages[i]
		if pk.Manager == pkgdb.ManagerDpkg {
			continue
		}
		for _, f := range pk.Files {
			addOwned(f.Path)
		}
	}
	// A diverted file moved where the diversion says; it is still its package's.
	for from, d := range v.diversions {
		if owned[v.tree.resolveParent(from)] || len(v.owners["/"+from]) > 0 {
			addOwned(d.To)
		}
	}
	dirs := slices.Clone(systemDirs)
	for _, top := range []string{".", "usr", "usr/local"} {
		entries, err := v.root.ReadDir(top)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "lib") && e.Name() != "libexec" {
				dirs = append(dirs, path.Join(top, e.Name()))
			}
		}
	}
	var roots []string
	for _, d := range dirs {
		r, err := v.root.Resolve(d, true)
		if err != nil {
			continue
		}
		if info, err := v.root.Stat(r); err != nil || !info.IsDir() {
			continue
		}
		roots = append(roots, r)
	}
	sort.Strings(roots)
	roots = slices.Compact(roots)
	// Drop a root inside another (usr/lib/x inside usr/lib).
	var walk []string
	for _, r := range roots {
		if len(walk) > 0 && strings.HasPrefix(r, walk[len(walk)-1]+"/") {
			continue
		}
		walk = append(walk, r)
	}
	for _, r := range walk {
		if err := v.walk(ctx, r, owned); err != nil {
			return err
		}
	}
	return nil
}

// walk visits the executables under the resolved directory dir through the
// tree's listings, which the digest check has mostly made already.
func (v *verifier) walk(ctx context.Context, dir string, owned map[string]bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := v.tree.list(dir)
	if err != nil {
		v.issue(pkgdb.Issue{Path: "/" + pkgdb.EscapePath(dir), Reason: err.Error()})
		return nil
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d := entries[n]
		p := path.Join(dir, n)
		if d.IsDir() {
			if err := v.walk(ctx, p, owned); err != nil {
				return err
			}
			continue
		}
		if !d.Type().IsRegular() {
			continue
		}
		info, err := d.Info()
		if err != nil || info.Mode().Perm()&0o111 == 0 || owned[p] {
			continue
		}
		if !validUTF8(p) {
			v.issue(pkgdb.Issue{Path: "/" + pkgdb.EscapePath(p), Reason: "file name is not valid UTF-8 (shown escaped)"})
		}
		v.problem(Problem{Path: "/" + pkgdb.EscapePath(p), Problem: Unowned,
			Detail: fmt.Sprintf("executable (%s, %d bytes) recorded by no package", info.Mode().Perm(), info.Size())})
	}
	return nil
}

func validUTF8(s string) bool { return pkgdb.EscapePath(s) == s }
