package secureboot

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"
)

// An SBAT level update raises the SbatLevel variable shim enforces. It comes
// three ways:
//
//   - "automatic": the previous payload shim carries in .sbatlevel, which it
//     writes by itself at boot when the variable is older (SbatPolicy unset
//     or 2);
//   - "latest": the latest payload it carries, which it writes when the
//     SbatPolicy variable asks for it (SbatPolicy=1, e.g. `mokutil
//     --set-sbat-policy latest`);
//   - a FILE holding one SbatLevel payload, as SbatLevel_Variable.txt prints
//     them ("sbat,1,2024040900\nshim,4\ngrub,4\n..."), or an exported
//     variable (efivarfs form: a 4-byte attribute word, then the payload),
//     written to the SbatLevel variable by a newer shim or by Windows.
//     FILE#DATESTAMP picks one payload from a history file holding several,
//     such as shim's SbatLevel_Variable.txt; FILE#latest picks its last.
//
// rhboot/shim: sbat.c (set_sbat_uefi_variable, preserve_sbat_uefi_variable),
// sbat_var.S, SbatLevel_Variable.txt.

// SBATUpdate is a parsed --sbat-level.
type SBATUpdate struct {
	// Source is the argument: "latest", "automatic", or the file (with
	// its #DATESTAMP).
	Source string `json:"source"`
	// Policy is the SbatPolicy for "latest" and "automatic".
	Policy SBATPolicy `json:"-"`
	// Keyword is "latest" or "automatic", "" for a file.
	Keyword string `json:"keyword,omitempty"`
	// Payload is the file's payload, written to the SbatLevel variable.
	Payload string `json:"payload,omitempty"`
	// Level is the payload parsed.
	Level *SBATLevel `json:"-"`
}

// SBATLevelError is an SbatLevel file that cannot be used.
type SBATLevelError struct {
	Source string
	Line   int // 1-based, 0 for the whole file
	Reason string
}

func (e *SBATLevelError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("secureboot: %s: %s", e.Source, e.Reason)
	}
	return fmt.Sprintf("secureboot: %s: line %d: %s", e.Source, e.Line, e.Reason)
}

// ParseSBATUpdateArg reads --sbat-level's argument: "latest", "automatic"
// (keywords win over files of those names; write ./latest for a file), FILE
// or FILE#DATESTAMP (or FILE#latest).
func ParseSBATUpdateArg(arg string) (*SBATUpdate, error) {
	switch arg {
	case "latest", "automatic":
		p, _ := ParseSBATPolicy(arg)
		return &SBATUpdate{Source: arg, Keyword: arg, Policy: p}, nil
	case "":
		return nil, fmt.Errorf("secureboot: --sbat-level needs latest, automatic or a file")
	}
	file, pick := arg, ""
	if _, err := os.Stat(arg); err != nil {
		file, pick = SplitSBATArg(arg)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("secureboot: SbatLevel: %w", err)
	}
	return ParseSBATUpdate(b, file, pick)
}

// SplitSBATArg splits an --sbat-level FILE#PICK argument into the file and
// the pick (a datestamp or latest); pick is "" without a '#'. Callers that
// can see the file check first that no file is named arg itself.
func SplitSBATArg(arg string) (file, pick string) {
	if i := strings.LastIndexByte(arg, '#'); i > 0 {
		return arg[:i], arg[i+1:]
	}
	return arg, ""
}

// ParseSBATUpdate parses an SbatLevel file: one payload, an exported
// variable, or (with pick, a datestamp or "latest") a history of payloads.
func ParseSBATUpdate(b []byte, source, pick string) (*SBATUpdate, error) {
	bad := func(line int, format string, args ...any) error {
		return &SBATLevelError{Source: source, Line: line, Reason: fmt.Sprintf(format, args...)}
	}
	// An exported variable: attributes (NV|BS, maybe RT/AT), then the
	// payload, which may end in a NUL.
	if len(b) >= 4+len("sbat,") && binary.LittleEndian.Uint32(b) < 0x80 && bytes.HasPrefix(b[4:], []byte("sbat,")) {
		b = b[4:]
		if i := bytes.IndexByte(b, 0); i >= 0 && len(bytes.Trim(b[i:], "\x00")) == 0 {
			b = b[:i]
		}
	}
	if len(b) == 0 {
		return nil, bad(0, "empty file: not an SbatLevel payload")
	}
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return nil, bad(0, "binary data: not an SbatLevel payload (text rows component,generation)")
	}
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	payloads := sbatPayloads(text)
	var payload sbatPayload
	switch {
	case pick != "":
		if len(payloads) == 0 {
			return nil, bad(0, "holds no SbatLevel payload (a row sbat,1,DATESTAMP followed by component,generation rows) to pick %q from", pick)
		}
		found := false
		for _, p := range payloads {
			// A datestamp may be published twice (2022052400: shim's
			// automatic and latest forms); the later, stricter one wins.
			if pick == "latest" || p.datestamp == pick {
				payload, found = p, true
			}
		}
		if !found {
			return nil, bad(0, "no SbatLevel payload with datestamp %q; it holds %s", pick, datestamps(payloads))
		}
	case len(payloads) > 1:
		return nil, bad(0, "holds %d SbatLevel payloads (%s): name one as %s#DATESTAMP or %s#latest", len(payloads), datestamps(payloads), source, source)
	default:
		// One payload: the whole file must be it.
		lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
		if err := checkPayloadLines(lines, 1); err != nil {
			return nil, &SBATLevelError{Source: source, Line: err.Line, Reason: err.Reason}
		}
		payload = sbatPayload{text: strings.Join(lines, "\n") + "\n", line: 1}
	}
	lvl, err := ParseSBATLevel([]byte(payload.text))
	if err != nil {
		return nil, bad(payload.line, "%v", err)
	}
	lvl.Source = source
	if pick != "" {
		lvl.Source = source + "#" + lvl.Datestamp
	}
	return &SBATUpdate{Source: lvl.Source, Payload: payload.text, Level: lvl}, nil
}

type sbatPayload struct {
	text, datestamp string
	line            int
}

var (
	reSbatHead = regexp.MustCompile(`^sbat,1,([0-9]+)$`)
	reSbatRow  = regexp.MustCompile(`^[A-Za-z0-9._+-]+,[0-9]+$`)
)

// sbatPayloads finds the payloads of a history text such as shim's
// SbatLevel_Variable.txt: a line "sbat,1,DATESTAMP" and the
// "component,generation" lines right after it.
func sbatPayloads(text string) []sbatPayload {
	var out []sbatPayload
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		m := reSbatHead.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		p := sbatPayload{text: lines[i] + "\n", datestamp: m[1], line: i + 1}
		for i+1 < len(lines) && reSbatRow.MatchString(lines[i+1]) {
			i++
			p.text += lines[i] + "\n"
		}
		out = append(out, p)
	}
	return out
}

func datestamps(ps []sbatPayload) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.datestamp)
	}
	return strings.Join(s, ", ")
}

// checkPayloadLines checks a whole payload the way shim writes them: first
// "sbat,1,DATESTAMP", then "component,generation" rows (shim's parser would
// accept more, but a file that is not of this shape is not a level anyone
// publishes, and garbage must not pass for a level).
func checkPayloadLines(lines []string, first int) *SBATLevelError {
	if len(lines) == 0 || !reSbatHead.MatchString(lines[0]) {
		got := ""
		if len(lines) > 0 {
			got = lines[0]
		}
		return &SBATLevelError{Line: first, Reason: fmt.Sprintf("first row %q is not \"sbat,1,DATESTAMP\"", clip(got))}
	}
	for i, l := range lines[1:] {
		if !reSbatRow.MatchString(l) {
			return &SBATLevelError{Line: first + i + 1, Reason: fmt.Sprintf("row %q is not \"component,generation\"", clip(l))}
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
