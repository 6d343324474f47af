package sbom

import (
	"strings"
	"sync"
)

// spdxIDs maps declared licence names — SPDX identifiers, Debian copyright-format
// short names (https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
// #license-short-name) and Fedora's legacy names — to SPDX licence identifiers.
// Names not here stay as they were declared (a CycloneDX licence name, an SPDX
// LicenseRef).
var licenseIDs = sync.OnceValue(func() map[string]string {
	spdxIDs := map[string]string{}
	// Identifiers that map to themselves (case-insensitively).
	for _, id := range []string{
		"0BSD", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.0", "Apache-1.1", "Apache-2.0",
		"Artistic-1.0", "Artistic-1.0-Perl", "Artistic-2.0", "BSD-1-Clause", "BSD-2-Clause",
		"BSD-3-Clause", "BSD-4-Clause", "BSL-1.0", "bzip2-1.0.6", "CC-BY-3.0", "CC-BY-4.0",
		"CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0-1.0", "CDDL-1.0", "curl", "EPL-1.0", "EPL-2.0",
		"GFDL-1.2-only", "GFDL-1.2-or-later", "GFDL-1.3-only", "GFDL-1.3-or-later",
		"GPL-1.0-only", "GPL-1.0-or-later", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only",
		"GPL-3.0-or-later", "ISC", "LGPL-2.0-only", "LGPL-2.0-or-later", "LGPL-2.1-only",
		"LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later", "Libpng", "MIT", "MIT-0",
		"MPL-1.1", "MPL-2.0", "NCSA", "OpenSSL", "PostgreSQL", "PSF-2.0", "Python-2.0", "Ruby",
		"Sleepycat", "TCL", "Unicode-DFS-2016", "Unlicense", "Vim", "W3C", "X11", "Zlib", "ZPL-2.1",
		"FSFAP", "FSFUL", "FSFULLR", "GPL-2.0-with-classpath-exception", "HPND", "ICU", "IJG",
		"Info-ZIP", "LPPL-1.3c", "OFL-1.1", "OLDAP-2.8", "BSD-3-Clause-Clear", "blessing",
	} {
		spdxIDs[strings.ToLower(id)] = id
	}
	for name, id := range map[string]string{
		// Debian copyright-format short names.
		"gpl": "GPL-1.0-or-later", "gpl-1": "GPL-1.0-only", "gpl-1+": "GPL-1.0-or-later",
		"gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later", "gpl-2.0": "GPL-2.0-only", "gpl-2.0+": "GPL-2.0-or-later",
		"gpl-3": "GPL-3.0-only", "gpl-3+": "GPL-3.0-or-later", "gpl-3.0": "GPL-3.0-only", "gpl-3.0+": "GPL-3.0-or-later",
		"lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later", "lgpl-2.0": "LGPL-2.0-only", "lgpl-2.0+": "LGPL-2.0-or-later",
		"lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-3": "LGPL-3.0-only", "lgpl-3+": "LGPL-3.0-or-later",
		"lgpl-3.0": "LGPL-3.0-only", "lgpl-3.0+": "LGPL-3.0-or-later",
		"agpl-3": "AGPL-3.0-only", "agpl-3+": "AGPL-3.0-or-later",
		"gfdl-1.2": "GFDL-1.2-only", "gfdl-1.2+": "GFDL-1.2-or-later", "gfdl-1.3": "GFDL-1.3-only", "gfdl-1.3+": "GFDL-1.3-or-later",
		"gfdl-niv-1.3+": "GFDL-1.3-no-invariants-or-later",
		"apache-2":      "Apache-2.0", "apache-2.0": "Apache-2.0", "artistic": "Artistic-1.0-Perl", "artistic-2": "Artistic-2.0",
		"bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause",
		"expat": "MIT", "zlib": "Zlib", "cc0": "CC0-1.0", "cc0-1.0": "CC0-1.0", "mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0",
		"isc": "ISC", "python": "Python-2.0", "psf-2": "PSF-2.0", "bsl-1.0": "BSL-1.0",
		// Fedora legacy names.
		"gplv2": "GPL-2.0-only", "gplv2+": "GPL-2.0-or-later", "gplv3": "GPL-3.0-only", "gplv3+": "GPL-3.0-or-later",
		"lgplv2": "LGPL-2.0-only", "lgplv2+": "LGPL-2.0-or-later", "lgplv2.1": "LGPL-2.1-only", "lgplv2.1+": "LGPL-2.1-or-later",
		"lgplv3": "LGPL-3.0-only", "lgplv3+": "LGPL-3.0-or-later", "asl 2.0": "Apache-2.0", "bsd": "BSD-3-Clause",
		"mpl": "MPL-1.1", "mplv2.0": "MPL-2.0", "public domain": "LicenseRef-public-domain", "public-domain": "LicenseRef-public-domain",
	} {
		spdxIDs[name] = id
	}
	return spdxIDs
})

// License is a declared licence in both SBOM dialects.
type License struct {
	Declared string // as the package declared it
	// Expression is a valid SPDX expression when every part is known, with
	// unknown parts as LicenseRef-<sanitised name>.
	Expression string
	// Refs are the LicenseRef- identifiers Expression uses, with the declared
	// name each stands for.
	Refs map[string]string
	// Known is true when Expression has no LicenseRef made up here.
	Known bool
}

// ParseLicense converts a declared licence (an SPDX expression, a Debian
// synopsis such as "GPL-2+ or Artistic", a Fedora "GPLv2+ and LGPLv2+") into an
// SPDX expression.
func ParseLicense(declared string) License {
	l := License{Declared: declared, Refs: map[string]string{}, Known: true}
	declared = strings.TrimSpace(declared)
	if declared == "" {
		return l
	}
	var out []string
	for _, tok := range tokenize(declared) {
		switch strings.ToLower(tok) {
		case "and", "&", ",", "&&":
			out = append(out, "AND")
			continue
		case "or", "|", "||":
			out = append(out, "OR")
			continue
		case "with":
			out = append(out, "WITH")
			continue
		case "(", ")":
			out = append(out, tok)
			continue
		}
		if len(out) > 0 && out[len(out)-1] == "WITH" {
			out = append(out, sanitize(tok))
			continue
		}
		if id, ok := licenseIDs()[strings.ToLower(tok)]; ok {
			if strings.HasPrefix(id, "LicenseRef-") {
				l.Refs[id] = tok
				l.Known = false
			}
			out = append(out, id)
			continue
		}
		ref := "LicenseRef-" + sanitize(tok)
		l.Refs[ref] = tok
		l.Known = false
		out = append(out, ref)
	}
	l.Expression = normalizeExpr(out)
	return l
}

// tokenize splits on spaces, parentheses and commas, keeping multi-word Fedora
// names ("ASL 2.0", "Public Domain") together.
func tokenize(s string) []string {
	var toks []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch r {
		case '(', ')', ',':
			flush()
			toks = append(toks, string(r))
		case ' ', '\t', '\n':
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	// Rejoin "ASL 2.0", "Public Domain".
	var out []string
	for i := 0; i < len(toks); i++ {
		if i+1 < len(toks) {
			two := strings.ToLower(toks[i] + " " + toks[i+1])
			if _, ok := licenseIDs()[two]; ok {
				out = append(out, toks[i]+" "+toks[i+1])
				i++
				continue
			}
		}
		out = append(out, toks[i])
	}
	return out
}

// normalizeExpr drops operators without operands on both sides, so a sloppy
// declaration still gives a well-formed expression.
func normalizeExpr(toks []string) string {
	isOp := func(t string) bool { return t == "AND" || t == "OR" || t == "WITH" }
	var out []string
	for _, t := range toks {
		if isOp(t) && (len(out) == 0 || isOp(out[len(out)-1]) || out[len(out)-1] == "(") {
			continue
		}
		if t == ")" && len(out) > 0 && isOp(out[len(out)-1]) {
			out = out[:len(out)-1]
		}
		if !isOp(t) && t != ")" && t != "(" && len(out) > 0 && !isOp(out[len(out)-1]) && out[len(out)-1] != "(" {
			out = append(out, "AND") // two names side by side
		}
		out = append(out, t)
	}
	for len(out) > 0 && isOp(out[len(out)-1]) {
		out = out[:len(out)-1]
	}
	// Balance parentheses.
	depth := 0
	var bal []string
	for _, t := range out {
		if t == ")" {
			if depth == 0 {
				continue
			}
			depth--
		}
		if t == "(" {
			depth++
		}
		bal = append(bal, t)
	}
	for ; depth > 0; depth-- {
		bal = append(bal, ")")
	}
	s := strings.Join(bal, " ")
	s = strings.ReplaceAll(strings.ReplaceAll(s, "( ", "("), " )", ")")
	return s
}

// sanitize makes an idstring: letters, digits, '.' and '-' (SPDX 2.3 §10.1).
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		case r == '+':
			b.WriteString("-or-later")
		default:
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}
