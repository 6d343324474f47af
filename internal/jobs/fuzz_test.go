package jobs

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vouch-dev/vouch/internal/imagetest"
)

// FuzzTemplate feeds template documents (what PUT /v1/templates and a job's
// templateProperties carry) to the strict decoder and Resolve: an error or
// cases, never a panic; a resolved selection names only catalogue cases.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		`{"selections":[{"casePriority":[0]}]}`,
		`{"selections":[{"caseName":["network.*"]},{"caseName":["network.dns"],"action":"exclude"}],"retryCount":1,"testIterations":2}`,
		`{"selections":[{"caseArea":["boot"],"caseTags":["smoke"]}],"firmware":{"profile":"matrix"}}`,
		`{"selections":[{"caseName":["["]}]}`,
		`{"selections":[{}]}`,
	} {
		f.Add([]byte(s))
	}
	all := imagetest.All()
	names := map[string]bool{}
	for _, c := range all {
		names[c.Name] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p TemplateProperties
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if dec.Decode(&p) != nil {
			return
		}
		cases, err := Resolve(p, all)
		if err != nil {
			if _, ok := err.(*InputError); !ok {
				t.Fatalf("not an input error: %T %v", err, err)
			}
			return
		}
		if len(cases) == 0 {
			t.Fatal("resolved to no case without an error")
		}
		for _, c := range cases {
			if !names[c.Name] {
				t.Fatalf("case %q is not in the catalogue", c.Name)
			}
		}
	})
}

// FuzzCleanConsoleLine feeds raw serial bytes (what a guest prints) to the
// console cleaner: valid UTF-8 without escapes or control characters other
// than tabs, never longer than the input, never a panic.
func FuzzCleanConsoleLine(f *testing.F) {
	for _, s := range []string{
		"debian login: ",
		"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001",
		"progress 10%\rprogress 100%\r",
		"\x1b(B\x1b)0\x1b[?25lGNU GRUB  version 2.06\x1b[m",
		"\xff\xfe bad utf-8 \x00\x07",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := CleanConsoleLine(s)
		if len(out) > len(s) || !utf8.ValidString(out) {
			t.Fatalf("%q -> %q", s, out)
		}
		for _, r := range out {
			if r == 0x1b || (r < 0x20 && r != '\t') || r == 0x7f {
				t.Fatalf("%q -> %q keeps %U", s, out, r)
			}
		}
	})
}

// FuzzLogAppend feeds a worker's log append bodies to the strict decoder
// and the service's checks before the store: an input error or lines cut
// to the bound, never a panic.
func FuzzLogAppend(f *testing.F) {
	for _, s := range []string{
		`{"lease":"l","from":0,"lines":[{"case":"console","line":"booting"}]}`,
		`{"lease":"l","from":-1,"lines":[]}`,
		`{"lease":"l","from":3,"lines":[{"line":"` + strings.Repeat("x", 100) + `"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var a LogAppend
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if dec.Decode(&a) != nil {
			return
		}
		if err := checkAppend(&a); err != nil {
			if _, ok := err.(*InputError); !ok {
				t.Fatalf("not an input error: %T %v", err, err)
			}
			return
		}
		for _, l := range a.Lines {
			if len(l.Line) > MaxLogLine || !utf8.ValidString(l.Line) || strings.Contains(l.Line, "\x00") {
				t.Fatalf("line of %d bytes kept", len(l.Line))
			}
		}
	})
}
