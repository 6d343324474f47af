package sysconf

import "strings"

// PAMRule is one line of a PAM stack in /etc/pam.d (pam.d(5)).
type PAMRule struct {
	Type     string   // auth, account, password or session
	Optional bool     // "-type": skipped when the module is missing
	Control  string   // "required", "[success=1 default=ignore]", "include"...
	Module   string   // "pam_unix.so" or a path
	Args     []string // a bracketed argument ("[query=...]") is one argument
	Include  string   // the file of an "@include file" line (Debian); the other fields are empty
	Bad      bool     // fewer than three fields: libpam rejects the line
	File     string
	Line     int // the first physical line of a continued line
}

// ParsePAM parses one PAM stack file: comments from "#", lines continued
// with a trailing backslash, bracketed controls and arguments holding
// spaces, "@include" lines.
func ParsePAM(file, text string) []PAMRule {
	var out []PAMRule
	ls := Lines(text)
	for i := 0; i < len(ls); i++ {
		first := i + 1
		l := ls[i]
		for strings.HasSuffix(l, `\`) && i+1 < len(ls) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + ls[i]
		}
		if j := strings.IndexByte(l, '#'); j >= 0 {
			l = l[:j]
		}
		f := pamFields(l)
		if len(f) == 0 {
			continue
		}
		r := PAMRule{File: file, Line: first}
		if f[0] == "@include" {
			if len(f) > 1 {
				r.Include = f[1]
			} else {
				r.Bad = true
			}
			out = append(out, r)
			continue
		}
		if len(f) < 3 {
			r.Bad = true
			out = append(out, r)
			continue
		}
		r.Type, r.Optional = strings.TrimPrefix(f[0], "-"), strings.HasPrefix(f[0], "-")
		r.Type = strings.ToLower(r.Type)
		r.Control, r.Module, r.Args = f[1], f[2], f[3:]
		if strings.HasPrefix(r.Control, "[") {
			// libpam reads the actions inside the brackets as blank-separated
			// tokens.
			r.Control = "[" + strings.Join(strings.Fields(strings.Trim(r.Control, "[]")), " ") + "]"
		}
		out = append(out, r)
	}
	return out
}

// pamFields splits a line at blanks, keeping a bracketed field ("[a=b c=d]",
// "\]" escaping a bracket inside) whole.
func pamFields(l string) []string {
	var out []string
	for l = strings.TrimLeft(l, " \t"); l != ""; l = strings.TrimLeft(l, " \t") {
		end := strings.IndexAny(l, " \t")
		if l[0] == '[' {
			end = -1
			for j := 1; j < len(l); j++ {
				if l[j] == ']' && l[j-1] != '\\' {
					end = j + 1
					break
				}
			}
		}
		if end < 0 {
			end = len(l)
		}
		out = append(out, l[:end])
		l = l[end:]
	}
	return out
}

// Uses reports whether the rule of type typ calls module (by its base name,
// "pam_unix.so" matching "/lib/security/pam_unix.so").
func (r PAMRule) Uses(typ, module string) bool {
	if r.Type != typ {
		return false
	}
	m := r.Module
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	return m == module
}

// Arg reports whether the rule has the argument name, alone ("nullok") or
// with a value ("remember=24"), and the value of the first such argument.
func (r PAMRule) Arg(name string) (value string, ok bool) {
	for _, a := range r.Args {
		if a == name {
			return "", true
		}
		if v, found := strings.CutPrefix(a, name+"="); found {
			return v, true
		}
	}
	return "", false
}
