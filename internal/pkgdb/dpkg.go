package pkgdb

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"unicode/utf8"
)

// DpkgAdminDir is dpkg's database directory, relative to the root.
const DpkgAdminDir = "var/lib/dpkg"

// readDpkg reads var/lib/dpkg/status and var/lib/dpkg/status.d/*.
func readDpkg(ctx context.Context, fsys fs.FS, opts Options, inv *Inventory) (bool, error) {
	found := false
	statusPath := path.Join(DpkgAdminDir, "status")
	if b, err := fs.ReadFile(fsys, statusPath); err == nil {
		found = true
		inv.Databases = append(inv.Databases, statusPath)
		pkgs, issues := ParseDpkgStatus(b, statusPath, opts.AllStates)
		inv.Issues = append(inv.Issues, issues...)
		inv.Packages = append(inv.Packages, pkgs...)
	} else if !errors.Is(err, fs.ErrNotExist) {
		found = true
		inv.Issues = append(inv.Issues, Issue{Path: statusPath, Reason: err.Error()})
	}
	// distroless: one stanza per file in status.d/, md5sums beside them.
	dir := path.Join(DpkgAdminDir, "status.d")
	if entries, err := fs.ReadDir(fsys, dir); err == nil {
		found = true
		inv.Databases = append(inv.Databases, dir)
		for _, e := range entries {
			if e.IsDir() || strings.HasSuffix(e.Name(), ".md5sums") || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			p := path.Join(dir, e.Name())
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				inv.Issues = append(inv.Issues, Issue{Path: p, Reason: err.Error()})
				continue
			}
			pkgs, issues := parseDpkgStanzas(b, p, opts.AllStates, true)
			inv.Issues = append(inv.Issues, issues...)
			inv.Packages = append(inv.Packages, pkgs...)
		}
	}
	if !found {
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		return true, err
	}
	if opts.Files || opts.Licenses {
		info := OpenDpkgInfo(fsys)
		for i := range inv.Packages {
			p := &inv.Packages[i]
			if p.Manager != ManagerDpkg {
				continue
			}
			if opts.Files {
				files, issue := info.FileList(p)
				if issue != nil {
					inv.Issues = append(inv.Issues, *issue)
				}
				p.Files = files
			}
			if opts.Licenses {
				p.License = DebianCopyrightLicense(fsys, p.Name)
			}
		}
	}
	return true, nil
}

// ParseDpkgStatus parses a dpkg status file. It keeps the packages dpkg-query -W
// shows (every state but not-installed) when allStates is set, else only those
// installed or half-configured (whose files are all on disk).
func ParseDpkgStatus(b []byte, file string, allStates bool) ([]Package, []Issue) {
	return parseDpkgStanzas(b, file, allStates, false)
}

func parseDpkgStanzas(b []byte, file string, allStates, statusOptional bool) ([]Package, []Issue) {
	stanzas, errs := ParseStanzas(b)
	var issues []Issue
	for _, e := range errs {
		issues = append(issues, Issue{Path: file, Line: e.Line, Reason: "corrupt stanza: " + e.Reason})
	}
	var out []Package
	for _, s := range stanzas {
		name := s.Get("Package")
		if name == "" {
			issues = append(issues, Issue{Path: file, Line: s.Line, Reason: "corrupt stanza: no Package field"})
			continue
		}
		state := "installed"
		if st := s.Get("Status"); st != "" || !statusOptional {
			f := strings.Fields(st)
			if len(f) != 3 {
				issues = append(issues, Issue{Path: file, Line: s.Line, Reason: fmt.Sprintf("package %s: bad Status %q", EscapePath(name), st)})
				continue
			}
			state = f[2]
		}
		if !knownState(state) {
			issues = append(issues, Issue{Path: file, Line: s.Line, Reason: fmt.Sprintf("package %s: unknown state %q", EscapePath(name), state)})
			continue
		}
		if state == "not-installed" {
			continue
		}
		if !allStates && state != "installed" && state != "half-configured" {
			continue
		}
		p := Package{
			Name:         name,
			Version:      s.Get("Version"),
			Architecture: s.Get("Architecture"),
			Manager:      ManagerDpkg,
			Status:       state,
			MultiArch:    s.Get("Multi-Arch"),
			Replaces:     s.Get("Replaces"),
			Origin:       fmt.Sprintf("%s:%d", file, s.Line),
		}
		if p.Version == "" && (state == "installed" || state == "half-configured") {
			issues = append(issues, Issue{Path: file, Line: s.Line, Reason: fmt.Sprintf("package %s: installed without a Version", EscapePath(name))})
		}
		p.Source, p.SourceVersion = splitSource(s.Get("Source"))
		if p.Source == "" {
			p.Source = p.Name
		}
		if p.SourceVersion == "" {
			p.SourceVersion = p.Version
		}
		p.Conffiles = parseConffiles(s.Get("Conffiles"))
		out = append(out, p)
	}
	return out, issues
}

func knownState(s string) bool {
	switch s {
	case "not-installed", "config-files", "half-installed", "unpacked",
		"half-configured", "triggers-awaited", "triggers-pending", "installed":
		return true
	}
	return false
}

// splitSource splits dpkg's "Source: name (version)".
func splitSource(s string) (string, string) {
	s = strings.TrimSpace(s)
	name, rest, ok := strings.Cut(s, " ")
	if !ok {
		return s, ""
	}
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") {
		return name, strings.TrimSpace(rest[1 : len(rest)-1])
	}
	return name, ""
}

// parseConffiles reads the Conffiles field: " /path md5 [obsolete] [remove-on-upgrade]".
func parseConffiles(v string) []Conffile {
	var out []Conffile
	for _, line := range strings.Split(v, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		c := Conffile{Algo: crypto.MD5}
		for len(f) > 2 {
			switch f[len(f)-1] {
			case "obsolete":
				c.Obsolete = true
			case "remove-on-upgrade":
				c.RemoveOnUpgrade = true
			default:
				goto done
			}
			f = f[:len(f)-1]
		}
	done:
		c.Digest = strings.ToLower(f[len(f)-1])
		c.Path = strings.Join(f[:len(f)-1], " ")
		out = append(out, c)
	}
	return out
}

// DpkgInfo knows the files of var/lib/dpkg/info, listed once: on a disk image
// every lookup of a path costs directory reads, so names are checked against
// this listing instead.
type DpkgInfo struct {
	fsys  fs.FS
	names map[string]bool
}

// OpenDpkgInfo lists var/lib/dpkg/info.
func OpenDpkgInfo(fsys fs.FS) *DpkgInfo {
	d := &DpkgInfo{fsys: fsys, names: map[string]bool{}}
	if entries, err := fs.ReadDir(fsys, path.Join(DpkgAdminDir, "info")); err == nil {
		for _, e := range entries {
			d.names[e.Name()] = true
		}
	}
	return d
}

// name returns the base name dpkg uses for the package's files in info/:
// "name:arch" for Multi-Arch: same packages, "name" otherwise. It prefers
// whichever .list exists, as debsums does.
func (d *DpkgInfo) name(p *Package) string {
	plain, qualified := p.Name, p.Name+":"+p.Architecture
	if p.MultiArch == "same" {
		plain, qualified = qualified, plain
	}
	if d.names[plain+".list"] {
		return plain
	}
	if p.Architecture != "" && d.names[qualified+".list"] {
		return qualified
	}
	return plain
}

// Path returns the path of the package's info file with the given suffix
// ("list", "md5sums", "conffiles").
func (d *DpkgInfo) Path(p *Package, suffix string) string {
	return path.Join(DpkgAdminDir, "info", d.name(p)+"."+suffix)
}

// FileList reads info/PKG.list: every path the package installed, directories
// included. A missing list of an installed package is an issue.
func (d *DpkgInfo) FileList(p *Package) ([]File, *Issue) {
	lp := d.Path(p, "list")
	if !d.names[path.Base(lp)] {
		if p.Status != "installed" && p.Status != "half-configured" {
			return nil, nil
		}
		return nil, &Issue{Path: lp, Reason: "file list: " + fs.ErrNotExist.Error()}
	}
	b, err := fs.ReadFile(d.fsys, lp)
	if err != nil {
		return nil, &Issue{Path: lp, Reason: "file list: " + err.Error()}
	}
	var out []File
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		out = append(out, File{Path: string(line)})
	}
	return out, nil
}

// MD5Sum is one line of a dpkg md5sums file.
type MD5Sum struct {
	Path   string // relative to the root, as the file records it
	Digest string // 32 lower-case hex digits
}

// MD5Sums reads the package's md5sums file (info/PKG.md5sums, or
// status.d/PKG.md5sums on distroless). ok is false when there is none.
func (d *DpkgInfo) MD5Sums(p *Package) (sums []MD5Sum, file string, ok bool, issues []Issue) {
	candidates := []string{d.Path(p, "md5sums"), path.Join(DpkgAdminDir, "status.d", p.Name+".md5sums")}
	for i, c := range candidates {
		if i == 0 && !d.names[path.Base(c)] {
			continue
		}
		b, err := fs.ReadFile(d.fsys, c)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, c, false, []Issue{{Path: c, Reason: err.Error()}}
		}
		sums, issues = ParseMD5Sums(b, c)
		return sums, c, true, issues
	}
	return nil, candidates[0], false, nil
}

// ParseMD5Sums parses "HEX  path" lines; a malformed line is an issue, the rest
// is kept.
func ParseMD5Sums(b []byte, file string) ([]MD5Sum, []Issue) {
	var (
		out    []MD5Sum
		issues []Issue
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			continue
		}
		// debsums: split ' ', $_, 2 — the sum, then the path after any spaces.
		sum, rest, ok := strings.Cut(strings.TrimLeft(line, " "), " ")
		rest = strings.TrimLeft(rest, " ")
		if !ok || rest == "" || !isHex(sum, 32) {
			issues = append(issues, Issue{Path: file, Line: n, Reason: "invalid md5sums line: " + quoteShort([]byte(line))})
			continue
		}
		rest = strings.TrimPrefix(rest, "./")
		out = append(out, MD5Sum{Path: strings.TrimPrefix(rest, "/"), Digest: sum})
	}
	if err := sc.Err(); err != nil {
		issues = append(issues, Issue{Path: file, Line: n + 1, Reason: err.Error()})
	}
	return out, issues
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Diversion is one dpkg-divert entry: From is diverted To, by Package ("" for a
// local diversion).
type Diversion struct {
	From, To, Package string
}

// DpkgDiversions reads var/lib/dpkg/diversions (triples of lines).
func DpkgDiversions(fsys fs.FS) ([]Diversion, []Issue) {
	p := path.Join(DpkgAdminDir, "diversions")
	b, err := fs.ReadFile(fsys, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []Issue{{Path: p, Reason: err.Error()}}
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil, nil
	}
	var out []Diversion
	var issues []Issue
	if len(lines)%3 != 0 {
		issues = append(issues, Issue{Path: p, Line: len(lines) - len(lines)%3 + 1, Reason: "truncated diversion entry"})
	}
	for i := 0; i+2 < len(lines); i += 3 {
		d := Diversion{From: lines[i], To: lines[i+1], Package: lines[i+2]}
		if d.Package == ":" {
			d.Package = ""
		}
		out = append(out, d)
	}
	return out, issues
}

// DebianCopyrightLicense returns the licences declared by a machine-readable
// (DEP-5) usr/share/doc/PKG/copyright: the License: synopses of its header and
// Files paragraphs, each once, in order, joined with " AND ". Non-machine-readable
// or missing copyright files give "".
func DebianCopyrightLicense(fsys fs.FS, pkg string) string {
	b, err := fs.ReadFile(fsys, path.Join("usr/share/doc", pkg, "copyright"))
	if err != nil || len(b) > 4<<20 {
		return ""
	}
	stanzas, _ := ParseStanzas(b)
	if len(stanzas) == 0 || !strings.Contains(stanzas[0].Get("Format"), "copyright-format") {
		return ""
	}
	var names []string
	seen := map[string]bool{}
	for i, s := range stanzas {
		if i > 0 && !s.Has("Files") {
			continue // a stand-alone License paragraph: the text of a licence named elsewhere
		}
		lic, _, _ := strings.Cut(s.Get("License"), "\n")
		lic = strings.TrimSpace(lic)
		if lic == "" || !utf8.ValidString(lic) || seen[lic] {
			continue
		}
		seen[lic] = true
		names = append(names, lic)
	}
	for i, n := range names {
		if len(names) > 1 && strings.Contains(strings.ToLower(n), " or ") {
			names[i] = "(" + n + ")"
		}
	}
	return strings.Join(names, " AND ")
}

// EscapePath makes a file name printable: bytes that are not valid UTF-8 and
// control characters become \xNN, so a non-UTF-8 name survives JSON intact and
// readable.
func EscapePath(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || isControl(r) {
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		if r == '\\' {
			b.WriteString(`\\`)
		} else {
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// SortPackagesDpkg orders packages as dpkg-query -W lists them: by name, then
// architecture.
func SortPackagesDpkg(pkgs []Package) {
	sort.SliceStable(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Architecture < pkgs[j].Architecture
	})
}
