package secureboot

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// SBAT (UEFI Secure Boot Advanced Targeting, rhboot/shim SBAT.md): every
// shim-loaded binary carries a .sbat section of CSV rows
// component,generation,vendor,package,version,url; the SbatLevel variable
// lists component,generation minimums after a "sbat,1,DATESTAMP" row. shim
// refuses a binary when one of its components has a generation below the
// level's entry of the same name.

// SBATEntry is one row of a .sbat section.
type SBATEntry struct {
	Component  string `json:"component"`
	Generation string `json:"generation"`
	Vendor     string `json:"vendor"`
	Package    string `json:"package"`
	Version    string `json:"version"`
	URL        string `json:"url"`
}

// SBATLevelEntry is one row of an SbatLevel payload.
type SBATLevelEntry struct {
	Component  string `json:"component"`
	Generation string `json:"generation"`
}

// SBATLevel is a parsed SbatLevel payload.
type SBATLevel struct {
	// Datestamp is the third column of the "sbat" row, e.g. "2024040900".
	Datestamp string           `json:"datestamp"`
	Entries   []SBATLevelEntry `json:"entries"`
	// Text is the payload up to its first NUL.
	Text string `json:"text"`
	// Source says where the level came from: "SbatLevel variable",
	// "shim .sbatlevel (automatic)"...
	Source string `json:"source"`
}

// SBATRevocation says which component a level revokes.
type SBATRevocation struct {
	Component  string `json:"component"`
	Generation uint16 `json:"generation"`
	Level      uint16 `json:"level"`
}

func (r SBATRevocation) String() string {
	return fmt.Sprintf("%s generation %d is below the SbatLevel minimum %d", r.Component, r.Generation, r.Level)
}

// SBATError is a .sbat section or SbatLevel payload shim cannot parse.
type SBATError struct {
	What   string // ".sbat" or "SbatLevel"
	Line   int    // 1-based line of the CSV, 0 for the whole payload
	Reason string
}

func (e *SBATError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("secureboot: %s: %s", e.What, e.Reason)
	}
	return fmt.Sprintf("secureboot: %s: line %d: %s", e.What, e.Line, e.Reason)
}

// Column counts from shim's sbat.h.
const (
	sbatSectionColumns   = 6
	sbatVarColumns       = 3
	sbatVarRequiredCols  = 2
	sbatOriginalDatetime = "2021030218"
	// sbatOriginal is SBAT_VAR_ORIGINAL: no revocations.
	sbatOriginal = "sbat,1," + sbatOriginalDatetime + "\n"
)

// parseCSV splits data the way shim's parse_csv_data and parse_csv_line do:
// the data ends at its first NUL, a UTF-8 byte order mark is skipped, rows
// are separated by CR or LF with empty rows skipped, and each row yields at
// most maxCols comma-separated columns (further columns are dropped).
func parseCSV(b []byte, maxCols int) [][]string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimPrefix(b, []byte{0xef, 0xbb, 0xbf})
	var rows [][]string
	for _, line := range strings.FieldsFunc(string(b), func(r rune) bool { return r == '\r' || r == '\n' }) {
		cols := strings.SplitN(line, ",", maxCols+1)
		if len(cols) > maxCols {
			cols = cols[:maxCols]
		}
		rows = append(rows, cols)
	}
	return rows
}

// ParseSBAT parses a .sbat section as shim's parse_sbat_section does: every
// row needs six non-empty columns. Data that holds no row at all (only
// newlines) gives no entries and no error, as in shim.
func ParseSBAT(b []byte) ([]SBATEntry, error) {
	var out []SBATEntry
	for i, row := range parseCSV(b, sbatSectionColumns) {
		if len(row) < sbatSectionColumns {
			return nil, &SBATError{What: ".sbat", Line: i + 1, Reason: fmt.Sprintf("%d columns, want %d", len(row), sbatSectionColumns)}
		}
		for j, c := range row {
			if c == "" {
				return nil, &SBATError{What: ".sbat", Line: i + 1, Reason: fmt.Sprintf("column %d is empty", j+1)}
			}
		}
		out = append(out, SBATEntry{Component: row[0], Generation: row[1], Vendor: row[2], Package: row[3], Version: row[4], URL: row[5]})
	}
	return out, nil
}

// ParseSBATLevel parses an SbatLevel payload as shim's parse_sbat_var_data
// does: rows of two or three non-empty columns.
func ParseSBATLevel(b []byte) (*SBATLevel, error) {
	text := b
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	l := &SBATLevel{Text: string(text)}
	rows := parseCSV(b, sbatVarColumns)
	if len(rows) == 0 {
		return nil, &SBATError{What: "SbatLevel", Reason: "no rows"}
	}
	for i, row := range rows {
		if len(row) < sbatVarRequiredCols {
			return nil, &SBATError{What: "SbatLevel", Line: i + 1, Reason: fmt.Sprintf("%d column, want at least %d", len(row), sbatVarRequiredCols)}
		}
		for j, c := range row {
			if c == "" {
				return nil, &SBATError{What: "SbatLevel", Line: i + 1, Reason: fmt.Sprintf("column %d is empty", j+1)}
			}
		}
		if row[0] == "sbat" && len(row) == 3 && l.Datestamp == "" {
			l.Datestamp = row[2]
		}
		l.Entries = append(l.Entries, SBATLevelEntry{Component: row[0], Generation: row[1]})
	}
	return l, nil
}

// atoi is shim's: the leading decimal digits, 0 when there are none; the
// result lands in a UINT16 as in verify_single_entry.
func atoi(s string) uint16 {
	var n int32
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int32(s[i]-'0')
	}
	return uint16(n)
}

// Check applies the level to a binary's entries as shim's
// verify_sbat_helper does: each entry is compared with the first level entry
// of the same component name. It returns the first revocation, or nil.
func (l *SBATLevel) Check(entries []SBATEntry) *SBATRevocation {
	for _, e := range entries {
		for _, v := range l.Entries {
			if e.Component != v.Component {
				continue
			}
			if g, min := atoi(e.Generation), atoi(v.Generation); g < min {
				return &SBATRevocation{Component: e.Component, Generation: g, Level: min}
			}
			break
		}
	}
	return nil
}

// Minimum returns the level's generation for a component, 0 when it names
// none.
func (l *SBATLevel) Minimum(component string) uint16 {
	for _, v := range l.Entries {
		if v.Component == component {
			return atoi(v.Generation)
		}
	}
	return 0
}

// EmbeddedSBATLevels are the two SbatLevel payloads shim carries in its
// .sbatlevel section (sbat_var.S): a format version, then a payload header
// of two offsets, relative to that header (section offset 4), to
// NUL-terminated payloads. "Previous" is what shim applies automatically,
// "Latest" what it applies when SbatPolicy asks for it.
type EmbeddedSBATLevels struct {
	Version  uint32
	Previous string
	Latest   string
}

// ParseSBATLevelSection parses shim's .sbatlevel section.
func ParseSBATLevelSection(b []byte) (*EmbeddedSBATLevels, error) {
	const hdr = 12
	if len(b) < hdr {
		return nil, &SBATError{What: ".sbatlevel", Reason: fmt.Sprintf("section of %d bytes is shorter than its %d-byte header", len(b), hdr)}
	}
	e := &EmbeddedSBATLevels{Version: binary.LittleEndian.Uint32(b)}
	if e.Version != 0 {
		return nil, &SBATError{What: ".sbatlevel", Reason: fmt.Sprintf("format version %d, want 0", e.Version)}
	}
	str := func(field int) (string, error) {
		off := uint64(binary.LittleEndian.Uint32(b[field:]))
		start := 4 + off
		if off < hdr-4 || start >= uint64(len(b)) {
			return "", &SBATError{What: ".sbatlevel", Reason: fmt.Sprintf("payload offset 0x%x (at section offset %d) outside the %d-byte section", off, field, len(b))}
		}
		rest := b[start:]
		end := bytes.IndexByte(rest, 0)
		if end < 0 {
			return "", &SBATError{What: ".sbatlevel", Reason: fmt.Sprintf("payload at section offset 0x%x is not NUL-terminated", start)}
		}
		return string(rest[:end]), nil
	}
	var err error
	if e.Previous, err = str(4); err != nil {
		return nil, err
	}
	if e.Latest, err = str(8); err != nil {
		return nil, err
	}
	return e, nil
}

// SBATPolicy chooses which of shim's embedded levels it applies.
type SBATPolicy int

// SBAT policies (shim's SbatPolicy variable; automatic when it is unset).
const (
	SBATAutomatic SBATPolicy = iota // the "previous" payload
	SBATLatest
)

func (p SBATPolicy) String() string {
	if p == SBATLatest {
		return "latest"
	}
	return "automatic"
}

// ParseSBATPolicy reads "automatic" (or "previous") and "latest".
func ParseSBATPolicy(s string) (SBATPolicy, error) {
	switch s {
	case "", "automatic", "previous":
		return SBATAutomatic, nil
	case "latest":
		return SBATLatest, nil
	}
	return 0, fmt.Errorf("secureboot: unknown SBAT policy %q (want automatic or latest)", s)
}

// preserveLevel is shim's preserve_sbat_uefi_variable: keep the variable
// when its attributes are the expected ones, it starts with "sbat," and its
// version or datestamp is not older than the candidate's.
func preserveLevel(current []byte, attrs uint32, rtMirror bool, candidate string) bool {
	const nvbs, nvbsAT = 0x03, 0x23
	if !rtMirror && attrs != nvbs && attrs != nvbsAT {
		return false
	}
	if len(current) < len(sbatOriginal) || !bytes.HasPrefix(current, []byte("sbat,")) {
		return false
	}
	field := func(s string, n int) string {
		for i := 0; i < len(s); i++ {
			if n == 0 {
				return s[i:]
			}
			if s[i] == ',' {
				n--
			}
		}
		return ""
	}
	cur := string(current)
	if i := strings.IndexByte(cur, 0); i >= 0 {
		cur = cur[:i]
	}
	curVer, newVer := field(cur, 1), field(candidate, 1)
	curDate, newDate := field(cur, 2), field(candidate, 2)
	curVerLen := len(curVer) - len(curDate) - 1
	newVerLen := len(newVer) - len(newDate) - 1
	if curVerLen > newVerLen || (curVerLen == newVerLen && curVerLen >= 0 && curVer[:curVerLen] > newVer[:newVerLen]) {
		return true
	}
	n := len(sbatOriginalDatetime)
	return prefix(curDate, n) >= prefix(newDate, n)
}

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
