package osrelease

import (
	"errors"
	"testing"
	"testing/fstest"
	"time"
)

const debian12 = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Info
	}{
		{"debian", debian12, Info{ID: "debian", VersionID: "12", Codename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)", Name: "Debian GNU/Linux"}},
		{"rhel like", "ID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\nNAME='Red Hat Enterprise Linux'\n", Info{ID: "rhel", VersionID: "9.4", Name: "Red Hat Enterprise Linux", PrettyName: "Red Hat Enterprise Linux", IDLike: []string{"fedora"}}},
		{"escapes and junk", "# c\nNAME=\"a \\\"q\\\" \\$x\"\nnot a line\n =x\nID=Arch\n", Info{ID: "arch", Name: `a "q" $x`, PrettyName: `a "q" $x`}},
		{"empty", "", Info{ID: "linux"}},
	} {
		got := Parse([]byte(tc.in))
		if got.ID != tc.want.ID || got.VersionID != tc.want.VersionID || got.Name != tc.want.Name || got.PrettyName != tc.want.PrettyName || got.Codename != tc.want.Codename || len(got.IDLike) != len(tc.want.IDLike) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestReadFallback(t *testing.T) {
	fsys := fstest.MapFS{"usr/lib/os-release": {Data: []byte(debian12)}}
	info, err := Read(fsys)
	if err != nil || info.Path != "usr/lib/os-release" || info.ID != "debian" {
		t.Fatalf("Read = %+v, %v", info, err)
	}
	if _, err := Read(fstest.MapFS{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty root: %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	for _, tc := range []struct {
		id, version string
		at          string
		found, ok   bool
	}{
		{"debian", "12", "2026-11-23", true, true},
		{"debian", "11", "2026-11-23", true, false},
		{"debian", "11", "2026-08-31", true, true}, // last day still supported
		{"rhel", "9.4", "2026-11-23", true, true},  // prefix match
		{"ubuntu", "22.04", "2026-11-23", true, true},
		{"ubuntu", "20.04", "2026-11-23", true, false},
		{"amzn", "2", "2026-11-23", true, false},
		{"gentoo", "2.15", "2026-11-23", false, false},
	} {
		s, found := Lookup(&Info{ID: tc.id, VersionID: tc.version})
		if found != tc.found || (found && s.Supported(day(tc.at)) != tc.ok) {
			t.Errorf("%s %s at %s: found=%v supported=%v, want %v %v", tc.id, tc.version, tc.at, found, found && s.Supported(day(tc.at)), tc.found, tc.ok)
		}
	}
	for _, s := range lifecycle {
		if _, err := time.Parse(time.DateOnly, s.EndOfLife); err != nil {
			t.Errorf("%s %s: bad date %q", s.ID, s.Version, s.EndOfLife)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(debian12))
	f.Add([]byte("ID=\"x\\\"\nVERSION_ID='1\n=\n\x00\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info := Parse(b)
		if info.ID == "" {
			t.Fatal("empty ID: os-release(5) defaults it to linux")
		}
		Lookup(info)
		_ = info.String()
	})
}
