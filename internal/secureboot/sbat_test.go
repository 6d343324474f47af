package secureboot

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func TestParseSBAT(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []string // component,generation
		wantErr bool
	}{
		{"debian grub", sbatHeader + "grub,5,Free Software Foundation,grub,2.06,https://www.gnu.org/software/grub/\ngrub.debian,5,Debian,grub2,2.06-13+deb12u2,https://tracker.debian.org/pkg/grub2\n", []string{"sbat,1", "grub,5", "grub.debian,5"}, false},
		{"CRLF, blank lines, NUL padding", "\r\n" + sbatHeader + "\r\n\r\nshim,4,UEFI shim,shim,1,https://x\r\n\x00\x00garbage,after,nul", []string{"sbat,1", "shim,4"}, false},
		{"BOM", "\xef\xbb\xbf" + sbatHeader, []string{"sbat,1"}, false},
		{"extra columns dropped", "a,1,b,c,d,e,f,g\n", []string{"a,1"}, false},
		{"only newlines: no entries", "\n\n", nil, false},
		{"five columns", "grub,5,a,b,c\n", nil, true},
		{"empty column", "grub,,a,b,c,d\n", nil, true},
		{"trailing empty column", "grub,5,a,b,c,\n", nil, true},
	}
	for _, c := range cases {
		got, err := ParseSBAT([]byte(c.in))
		if (err != nil) != c.wantErr {
			t.Errorf("%s: err %v, want error %v", c.name, err, c.wantErr)
			continue
		}
		var names []string
		for _, e := range got {
			names = append(names, e.Component+","+e.Generation)
		}
		if strings.Join(names, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: got %v, want %v", c.name, names, c.want)
		}
	}
}

func TestSBATLevelCheck(t *testing.T) {
	grub := []SBATEntry{{Component: "sbat", Generation: "1"}, {Component: "grub", Generation: "4"}, {Component: "grub.debian", Generation: "4"}}
	cases := []struct {
		level   string
		revoked string
	}{
		{"sbat,1,2021030218\n", ""},
		{"sbat,1,2022111500\nshim,2\ngrub,3\n", ""},
		{"sbat,1,2023012900\nshim,2\ngrub,3\ngrub.debian,4\n", ""},
		{"sbat,1,2025021800\nshim,4\ngrub,5\n", "grub"},
		{"sbat,1,2099\ngrub.debian,5\n", "grub.debian"},
		{"sbat,2,2099\n", "sbat"},
		{"sbat,1,2099\ngrub,4\ngrub,9\n", ""}, // only the first entry of a name counts
		{"sbat,1,2099\ngrub,x\n", ""},         // atoi("x") = 0
	}
	for _, c := range cases {
		l, err := ParseSBATLevel([]byte(c.level))
		if err != nil {
			t.Fatalf("%q: %v", c.level, err)
		}
		r := l.Check(grub)
		got := ""
		if r != nil {
			got = r.Component
		}
		if got != c.revoked {
			t.Errorf("%q: revoked %q, want %q", c.level, got, c.revoked)
		}
	}
	for _, bad := range []string{"", "\n", "sbat\n", "sbat,,1\n"} {
		if _, err := ParseSBATLevel([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if atoi("65537") != 1 {
		t.Error("atoi does not wrap like shim's UINT16")
	}
}

// TestSBATLevelsPublished parses every level of shim's SbatLevel_Variable.txt
// and checks Debian 12's GRUB and shim against them.
func TestSBATLevelsPublished(t *testing.T) {
	testfixtures.NeedFixtures(t)
	f, err := os.Open(filepath.Join(sharedDir, "SbatLevel_Variable.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var levels []string
	var cur []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "sbat,1,"):
			cur = []string{line}
		case cur != nil && strings.Contains(line, ",") && !strings.Contains(line, " "):
			cur = append(cur, line)
		case cur != nil:
			levels = append(levels, strings.Join(cur, "\n")+"\n")
			cur = nil
		}
	}
	if cur != nil {
		levels = append(levels, strings.Join(cur, "\n")+"\n")
	}
	if len(levels) < 10 {
		t.Fatalf("found %d levels", len(levels))
	}
	grub, err := ParseSBAT(mustSection(t, deb(t, grubRel), ".sbat"))
	if err != nil {
		t.Fatal(err)
	}
	shim, err := ParseSBAT(mustSection(t, deb(t, shimRel), ".sbat"))
	if err != nil {
		t.Fatal(err)
	}
	for _, lv := range levels {
		l, err := ParseSBATLevel([]byte(lv))
		if err != nil {
			t.Fatalf("%q: %v", lv, err)
		}
		// Debian 12: shim,4 shim.debian,1; grub,5 grub.debian,5 grub.debian12,1.
		// Every published level allows them.
		if r := l.Check(grub); r != nil {
			t.Errorf("level %s revokes Debian 12's GRUB: %v", l.Datestamp, r)
		}
		if r := l.Check(shim); r != nil {
			t.Errorf("level %s revokes Debian 12's shim: %v", l.Datestamp, r)
		}
	}
	// A GRUB one generation older is revoked by the latest level.
	old := []SBATEntry{{Component: "grub", Generation: "4"}}
	latest, _ := ParseSBATLevel([]byte(levels[len(levels)-1]))
	if latest.Check(old) == nil {
		t.Errorf("latest level %s allows grub,4", latest.Datestamp)
	}
}

func mustSection(t testing.TB, b []byte, name string) []byte {
	t.Helper()
	s, ok := parseImage(t, b).SectionData(name)
	if !ok {
		t.Fatalf("no %s section", name)
	}
	return s
}

// TestSBATLevelSectionReal reads Debian's shim's .sbatlevel: version 0,
// offsets relative to the payload header at offset 4.
func TestSBATLevelSectionReal(t *testing.T) {
	testfixtures.NeedFixtures(t)
	e, err := ParseSBATLevelSection(mustSection(t, deb(t, shimRel), ".sbatlevel"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Previous != "sbat,1,2025021800\nshim,4\ngrub,5\n" {
		t.Errorf("previous %q", e.Previous)
	}
	if e.Latest != "sbat,1,2025051000\nshim,4\ngrub,5\ngrub.proxmox,2\n" {
		t.Errorf("latest %q", e.Latest)
	}
	for _, bad := range [][]byte{
		nil,
		make([]byte, 11),
		{1, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0, 'x', 0},     // version 1
		{0, 0, 0, 0, 99, 0, 0, 0, 8, 0, 0, 0, 'x', 0},    // offset past end
		{0, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0, 'x', 'y'},   // no NUL
		{0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 'x', 0},     // offset inside the header
		{0, 0, 0, 0, 8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, // huge offset
	} {
		if _, err := ParseSBATLevelSection(bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

func TestPreserveLevel(t *testing.T) {
	const nvbs = 0x03
	cases := []struct {
		current   string
		attrs     uint32
		rt        bool
		candidate string
		preserve  bool
	}{
		{"sbat,1,2025021800\nshim,4\ngrub,5\n", nvbs, false, "sbat,1,2024010900\nshim,4\n", true},
		{"sbat,1,2024010900\nshim,4\n", nvbs, false, "sbat,1,2025021800\nshim,4\ngrub,5\n", false},
		{"sbat,1,2025021800\nshim,4\ngrub,5\n", nvbs, false, "sbat,1,2025021800\nshim,4\ngrub,5\n", true},
		{"sbat,1,2025021800\nshim,4\ngrub,5\n", 0x07, false, "sbat,1,2024010900\n", false}, // wrong attributes
		{"sbat,1,2025021800\nshim,4\ngrub,5\n", 0x06, true, "sbat,1,2024010900\n", true},   // RT mirror
		{"sbat,2,2000010100\n", nvbs, false, "sbat,1,2025021800\n", true},                  // newer version
		{"sbat,1,20\n", nvbs, false, "sbat,1,2025021800\n", false},                         // too short
		{"xbat,1,2099010100\n", nvbs, false, "sbat,1,2025021800\n", false},
	}
	for _, c := range cases {
		if got := preserveLevel([]byte(c.current), c.attrs, c.rt, c.candidate); got != c.preserve {
			t.Errorf("%q vs %q: preserve %v, want %v", c.current, c.candidate, got, c.preserve)
		}
	}
}
