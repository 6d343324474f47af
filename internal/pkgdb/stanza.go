package pkgdb

import (
	"bytes"
	"strings"
)

// Stanza is one paragraph of a deb822 / dpkg control file: fields keyed by
// lower-case name (dpkg field names are case-insensitive), values with
// continuation lines joined by "\n" and the first line's leading space removed.
type Stanza struct {
	Line   int // line of the stanza's first field, 1-based
	Fields map[string]string
	Order  []string // field names (lower-case) in file order
}

// Get returns the value of a field, "" when absent.
func (s *Stanza) Get(name string) string { return s.Fields[strings.ToLower(name)] }

// Has reports whether the field is present.
func (s *Stanza) Has(name string) bool {
	_, ok := s.Fields[strings.ToLower(name)]
	return ok
}

// StanzaError is a malformed line; the stanza holding it is dropped.
type StanzaError struct {
	Line   int
	Reason string
}

// ParseStanzas splits b into stanzas. A malformed line drops the stanza it is in
// (reported with its line number); parsing resumes at the next blank line.
// Lines starting with '#' outside a continuation are comments (deb822).
func ParseStanzas(b []byte) ([]Stanza, []StanzaError) {
	var (
		out     []Stanza
		errs    []StanzaError
		cur     *Stanza
		lastKey string
		bad     bool
	)
	flush := func() {
		if cur != nil && !bad && len(cur.Fields) > 0 {
			out = append(out, *cur)
		}
		cur, lastKey, bad = nil, "", false
	}
	lineNo := 0
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		lineNo++
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			continue
		}
		if bad {
			continue
		}
		if line[0] == '#' {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur == nil || lastKey == "" {
				errs = append(errs, StanzaError{lineNo, "continuation line outside a field"})
				if cur == nil {
					cur = &Stanza{Line: lineNo, Fields: map[string]string{}}
				}
				bad = true
				continue
			}
			v := string(line[1:])
			if strings.TrimSpace(v) == "." {
				v = ""
			}
			cur.Fields[lastKey] += "\n" + v
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			errs = append(errs, StanzaError{lineNo, "line is neither a field nor a continuation: " + quoteShort(line)})
			if cur == nil {
				cur = &Stanza{Line: lineNo, Fields: map[string]string{}}
			}
			bad = true
			continue
		}
		key := string(line[:colon])
		if strings.ContainsAny(key, " \t") {
			errs = append(errs, StanzaError{lineNo, "field name contains a space: " + quoteShort(line[:colon])})
			if cur == nil {
				cur = &Stanza{Line: lineNo, Fields: map[string]string{}}
			}
			bad = true
			continue
		}
		if cur == nil {
			cur = &Stanza{Line: lineNo, Fields: map[string]string{}}
		}
		lk := strings.ToLower(key)
		if _, dup := cur.Fields[lk]; dup {
			errs = append(errs, StanzaError{lineNo, "duplicate field " + key})
			bad = true
			continue
		}
		cur.Fields[lk] = strings.TrimSpace(string(line[colon+1:]))
		cur.Order = append(cur.Order, lk)
		lastKey = lk
	}
	flush()
	return out, errs
}

func quoteShort(b []byte) string {
	if len(b) > 60 {
		b = append(b[:60:60], "..."...)
	}
	return EscapePath(string(b))
}
