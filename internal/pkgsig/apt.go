// Package pkgsig checks the trust chain of installed package sources and
// packages offline: apt sources that disable verification or are bound to no
// keyring, InRelease files in var/lib/apt/lists verified against the keyring
// their source configures (and their Valid-Until), and rpm header signatures
// verified against the keys in etc/pki/rpm-gpg and the rpm keyring (gpg-pubkey
// pseudo-packages). OpenPGP is github.com/ProtonMail/go-crypto.
package pkgsig

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/vouch-dev/vouch/internal/pkgdb"
)

// Source is one apt source: a line of a .list file or a deb822 stanza of a
// .sources file (one per type × URI × suite).
type Source struct {
	File          string   `json:"file"`
	Line          int      `json:"line"`
	Type          string   `json:"type"` // deb or deb-src
	URI           string   `json:"uri"`
	Suite         string   `json:"suite"`
	Components    []string `json:"components,omitempty"`
	SignedBy      []string `json:"signedBy,omitempty"` // keyring paths or fingerprints
	InlineKey     string   `json:"-"`                  // an armored key given in Signed-By itself
	Trusted       bool     `json:"trusted,omitempty"`
	AllowInsecure bool     `json:"allowInsecure,omitempty"`
	AllowWeak     bool     `json:"allowWeak,omitempty"`
}

// Problems returns what weakens the source's verification, empty when none.
func (s *Source) Problems() []string {
	var out []string
	if s.Trusted {
		out = append(out, "trusted=yes: apt accepts its packages without any signature")
	}
	if s.AllowInsecure {
		out = append(out, "allow-insecure=yes: apt accepts an unsigned repository")
	}
	if s.AllowWeak {
		out = append(out, "allow-weak=yes: apt accepts weak signature algorithms")
	}
	if len(s.SignedBy) == 0 && s.InlineKey == "" && !s.Trusted {
		out = append(out, "no signed-by: any key in apt's global keyring may sign it")
	}
	return out
}

// AptSources reads etc/apt/sources.list, sources.list.d/*.list and
// sources.list.d/*.sources. Malformed entries are issues.
func AptSources(fsys fs.FS) ([]Source, []pkgdb.Issue) {
	var (
		out    []Source
		issues []pkgdb.Issue
	)
	files := []string{"etc/apt/sources.list"}
	if entries, err := fs.ReadDir(fsys, "etc/apt/sources.list.d"); err == nil {
		var names []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".list") || strings.HasSuffix(e.Name(), ".sources") {
				names = append(names, "etc/apt/sources.list.d/"+e.Name())
			}
		}
		sort.Strings(names)
		files = append(files, names...)
	}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			issues = append(issues, pkgdb.Issue{Path: f, Reason: err.Error()})
			continue
		}
		var s []Source
		var is []pkgdb.Issue
		if strings.HasSuffix(f, ".sources") {
			s, is = ParseDeb822Sources(b, f)
		} else {
			s, is = ParseOneLineSources(b, f)
		}
		out = append(out, s...)
		issues = append(issues, is...)
	}
	return out, issues
}

// ParseOneLineSources parses the one-line format:
// "deb [opt=val ...] uri suite [component...]".
func ParseOneLineSources(b []byte, file string) ([]Source, []pkgdb.Issue) {
	var (
		out    []Source
		issues []pkgdb.Issue
	)
	for n, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		s := Source{File: file, Line: n + 1}
		typ, rest, _ := strings.Cut(line, " ")
		s.Type = typ
		if typ != "deb" && typ != "deb-src" {
			issues = append(issues, pkgdb.Issue{Path: file, Line: n + 1, Reason: fmt.Sprintf("unknown source type %q", typ)})
			continue
		}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				issues = append(issues, pkgdb.Issue{Path: file, Line: n + 1, Reason: "options not closed by ']'"})
				continue
			}
			for _, opt := range strings.Fields(rest[1:end]) {
				k, v, _ := strings.Cut(opt, "=")
				k = strings.TrimSuffix(strings.TrimSuffix(k, "+"), "-")
				setOption(&s, strings.ToLower(k), v)
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			issues = append(issues, pkgdb.Issue{Path: file, Line: n + 1, Reason: "source without a URI and a suite"})
			continue
		}
		s.URI, s.Suite, s.Components = f[0], f[1], f[2:]
		out = append(out, s)
	}
	return out, issues
}

func isYes(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes", "true", "1", "on":
		return true
	}
	return false
}

func setOption(s *Source, k, v string) {
	switch k {
	case "trusted":
		s.Trusted = isYes(v)
	case "allow-insecure", "allow-downgrade-to-insecure":
		s.AllowInsecure = s.AllowInsecure || isYes(v)
	case "allow-weak":
		s.AllowWeak = isYes(v)
	case "signed-by":
		v = strings.TrimSpace(v)
		if strings.Contains(v, "BEGIN PGP PUBLIC KEY BLOCK") {
			s.InlineKey = v
			return
		}
		s.SignedBy = append(s.SignedBy, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })...)
	}
}

// ParseDeb822Sources parses a deb822 .sources file (sources.list(5)).
func ParseDeb822Sources(b []byte, file string) ([]Source, []pkgdb.Issue) {
	stanzas, errs := pkgdb.ParseStanzas(b)
	var (
		out    []Source
		issues []pkgdb.Issue
	)
	for _, e := range errs {
		issues = append(issues, pkgdb.Issue{Path: file, Line: e.Line, Reason: "corrupt stanza: " + e.Reason})
	}
	for _, st := range stanzas {
		if st.Has("Enabled") && !isYes(st.Get("Enabled")) {
			continue
		}
		types, uris, suites := strings.Fields(st.Get("Types")), strings.Fields(st.Get("URIs")), strings.Fields(st.Get("Suites"))
		if len(types) == 0 || len(uris) == 0 || len(suites) == 0 {
			issues = append(issues, pkgdb.Issue{Path: file, Line: st.Line, Reason: "source stanza without Types, URIs or Suites"})
			continue
		}
		base := Source{File: file, Line: st.Line, Components: strings.Fields(st.Get("Components"))}
		for _, k := range []string{"Trusted", "Allow-Insecure", "Allow-Downgrade-To-Insecure", "Allow-Weak"} {
			if st.Has(k) {
				setOption(&base, strings.ToLower(k), st.Get(k))
			}
		}
		if st.Has("Signed-By") {
			setOption(&base, "signed-by", st.Get("Signed-By"))
		}
		for _, t := range types {
			for _, u := range uris {
				for _, su := range suites {
					s := base
					s.Type, s.URI, s.Suite = t, u, su
					out = append(out, s)
				}
			}
		}
	}
	return out, issues
}

// ListName is the file name apt gives a source's InRelease in var/lib/apt/lists
// (apt-pkg URItoFileName): the URI without its scheme, '/' as '_', then
// "dists/SUITE/InRelease" (or "SUITE/InRelease" for a flat repository).
func (s *Source) ListName() string {
	u := s.URI
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		u = u[at+1:] // credentials are not part of the name
	}
	u = strings.TrimSuffix(u, "/")
	var p string
	if strings.HasSuffix(s.Suite, "/") {
		p = u + "/" + strings.TrimSuffix(s.Suite, "/") + "/InRelease"
		if s.Suite == "/" {
			p = u + "/InRelease"
		}
	} else {
		p = u + "/dists/" + s.Suite + "/InRelease"
	}
	return strings.ReplaceAll(path.Clean(p), "/", "_")
}
