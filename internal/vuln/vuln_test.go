package vuln

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func TestCompareAPK(t *testing.T) {
	// Cases from apk-tools' test/version.data and Alpine's version rules.
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.10", "1.9", 1},
		{"1.0-r0", "1.0-r1", -1},
		{"1.0-r10", "1.0-r9", 1},
		{"1.0", "1.0-r0", -1}, // a revision, even r0, follows the bare version
		{"1.0_alpha", "1.0", -1},
		{"1.0_alpha", "1.0_beta", -1},
		{"1.0_beta", "1.0_pre", -1},
		{"1.0_pre", "1.0_rc", -1},
		{"1.0_rc1", "1.0", -1},
		{"1.0", "1.0_p1", -1},
		{"1.0_cvs", "1.0_svn", -1},
		{"1.0_git", "1.0_hg", -1},
		{"1.0_hg", "1.0_p", -1},
		{"1.0_rc1", "1.0_rc2", -1},
		{"1.0a", "1.0b", -1},
		{"1.0a", "1.0", 1},
		{"1.0.1", "1.0", 1},
		{"1.01", "1.1", -1},
		{"1.001", "1.01", -1},
		{"2.6.2-r0", "2.6.2_p1-r0", -1},
		{"1.2.4_git20230717-r4", "1.2.4-r4", 1},
		{"1.2.4_git20230717-r4", "1.2.5-r0", -1},
		{"3.1.4-r5", "3.1.4-r10", -1},
	} {
		if got := CompareAPK(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareAPK(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareAPK(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareAPK(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
	for _, v := range []string{"1.0", "1.0-r0", "1.2.4_git20230717-r4", "1.0a_rc1-r2"} {
		if !ValidAPK(v) {
			t.Errorf("ValidAPK(%q) = false", v)
		}
	}
	for _, v := range []string{"", "1.0-x", "1.0_foo", "-r1", "1..0"} {
		if ValidAPK(v) {
			t.Errorf("ValidAPK(%q) = true", v)
		}
	}
}

func TestDebAndRPMOrdering(t *testing.T) {
	for _, tc := range []struct {
		cmp  Comparator
		a, b string
		want int
	}{
		// dpkg: epochs dominate, '~' sorts before everything, even the end.
		{CompareDeb, "1:9.2p1-2+deb12u1", "1:9.2p1-2+deb12u2", -1},
		{CompareDeb, "1:1.0", "9.9", 1},
		{CompareDeb, "0:1.0", "1.0", 0},
		{CompareDeb, "3.0.11-1~deb12u2", "3.0.11-1", -1},
		{CompareDeb, "3.0.11-1~deb11u1", "3.0.11-1~deb12u2", -1},
		{CompareDeb, "1.0~rc1", "1.0", -1},
		{CompareDeb, "1.0~~", "1.0~", -1},
		{CompareDeb, "2.36-9+deb12u14", "2.36-9+deb12u3", 1},
		{CompareDeb, "5.2.15-2+b13", "5.2.15-2", 1},
		// rpm: epoch, then rpmvercmp; '~' before, '^' after.
		{CompareRPM, "1:3.0.7-27.el9", "3.0.7-28.el9", 1},
		{CompareRPM, "3.0.7-27.el9", "3.0.7-27.el9_2", -1},
		{CompareRPM, "1.0~rc1-1", "1.0-1", -1},
		{CompareRPM, "1.0^git1-1", "1.0-1", 1},
		{CompareRPM, "2.02-0.86.el7", "2.02-0.87.el7", -1},
		{CompareRPM, "1.10-1", "1.9-1", 1},
		{CompareRPM, "0:1.0-1", "1.0-1", 0},
	} {
		got, err := tc.cmp(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("compare(%q, %q) = %d, %v; want %d", tc.a, tc.b, got, err, tc.want)
		}
	}
	if _, err := CompareDeb("1:", "1"); err == nil {
		t.Error("CompareDeb accepted an empty version after the epoch")
	}
}

var debian12 = &osrelease.Info{ID: "debian", VersionID: "12"}

func pkg(name, version, source, srcver string) pkgdb.Package {
	return pkgdb.Package{Name: name, Version: version, Architecture: "amd64", Manager: "dpkg", Source: source, SourceVersion: srcver, Status: "installed"}
}

func ids(ms []Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID+" "+m.Package+" "+m.FixedVersion)
	}
	sort.Strings(out)
	return out
}

func TestMatchVersions(t *testing.T) {
	db, err := Load(filepath.Join("testdata", "osv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(db.Records) != 5 || len(db.Issues) != 2 {
		t.Fatalf("%d records, issues %v", len(db.Records), db.Issues)
	}
	for _, is := range db.Issues {
		if !strings.HasSuffix(is.Path, "broken.json") && !strings.HasSuffix(is.Path, "not-json.json") {
			t.Errorf("unexpected issue %v", is)
		}
	}
	for _, tc := range []struct {
		name string
		p    pkgdb.Package
		want []string
	}{
		{"epoch, affected", pkg("openssh-server", "1:9.2p1-2+deb12u1", "openssh", "1:9.2p1-2+deb12u1"), []string{"DSA-5586-1 openssh-server 1:9.2p1-2+deb12u2"}},
		{"epoch, fixed version itself", pkg("openssh-server", "1:9.2p1-2+deb12u2", "openssh", "1:9.2p1-2+deb12u2"), nil},
		{"epoch missing would compare as 0: 9.2p1 < 1:...", pkg("openssh-client", "9.9p1-1", "openssh", "9.9p1-1"), []string{"DSA-5586-1 openssh-client 1:9.2p1-2+deb12u2"}},
		{"tilde, older upload", pkg("libssl3", "3.0.11-1~deb12u1", "openssl", "3.0.11-1~deb12u1"), []string{"DSA-5532-1 libssl3 3.0.11-1~deb12u2"}},
		{"tilde, the fix", pkg("libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2"), nil},
		{"tilde, without the tilde sorts after", pkg("libssl3", "3.0.11-1", "openssl", "3.0.11-1"), nil},
		{"binary matched through its source", pkg("libc6", "2.36-9+deb12u1", "glibc", "2.36-9+deb12u1"), []string{"DSA-5514-1 libc6 2.36-9+deb12u3"}},
		{"binNMU: the source version decides", pkg("libc6", "2.36-9+deb12u3+b1", "glibc", "2.36-9+deb12u3"), nil},
		{"no fix", pkg("tar", "1.34+dfsg-1.2+deb12u1", "tar", "1.34+dfsg-1.2+deb12u1"), []string{"DEBIAN-CVE-2005-2541 tar "}},
		{"versions list", pkg("gzip", "1.12-1", "gzip", "1.12-1"), []string{"VOUCH-TEST-LIST-1 gzip "}},
		{"versions list, other version", pkg("gzip", "1.12-1+b1", "gzip", "1.12-1+b1"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := db.Match(&pkgdb.Inventory{Packages: []pkgdb.Package{tc.p}}, debian12)
			if got := ids(r.Matches); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("matches = %q, want %q", got, tc.want)
			}
		})
	}
	// Debian 11 sees only the Debian:11 range.
	r := db.Match(&pkgdb.Inventory{Packages: []pkgdb.Package{pkg("openssh-server", "1:8.4p1-5+deb11u2", "openssh", "1:8.4p1-5+deb11u2")}}, &osrelease.Info{ID: "debian", VersionID: "11"})
	if got := ids(r.Matches); len(got) != 1 || got[0] != "DSA-5586-1 openssh-server 1:8.4p1-5+deb11u3" {
		t.Errorf("debian 11: %v", got)
	}
}

func TestRangeEvents(t *testing.T) {
	a := Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{
		{Introduced: "1.0-1"}, {Fixed: "1.2-1"}, {Introduced: "2.0-1"}, {LastAffected: "2.1-1"},
	}}}}
	for v, want := range map[string]bool{"0.9-1": false, "1.0-1": true, "1.1-1": true, "1.2-1": false, "1.5-1": false, "2.0-1": true, "2.1-1": true, "2.1-2": false} {
		got, _, err := affects(a, v, CompareDeb)
		if err != nil || got != want {
			t.Errorf("affects(%s) = %v, %v; want %v", v, got, err, want)
		}
	}
}

func TestFixtureAndZip(t *testing.T) {
	testfixtures.NeedFixtures(t)
	root := testfixtures.Path(t, "rootfs")
	tg, err := target.Open(root, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	inv, err := pkgdb.Read(context.Background(), tg.Root, pkgdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := osrelease.Read(tg.Root)
	// VOUCH-TEST-LIST-1 lists gzip 1.12-1; the archive may move gzip on, so
	// the zip's copy lists the fixture's own gzip version (a versions list
	// matches exactly that version).
	gzipVersion := ""
	for _, p := range inv.Packages {
		if p.Name == "gzip" {
			gzipVersion = p.Version
		}
	}
	if gzipVersion == "" {
		t.Fatal("no gzip in the fixture's dpkg database")
	}
	// The same records as a zip, as OSV publishes Debian:12/all.zip.
	zp := filepath.Join(t.TempDir(), "all.zip")
	f, err := os.Create(zp)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	entries, _ := os.ReadDir(filepath.Join("testdata", "osv"))
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join("testdata", "osv", e.Name()))
		if e.Name() == "VOUCH-TEST-LIST-1.json" {
			b = bytes.ReplaceAll(b, []byte(`"1.12-1"`), []byte(strconv.Quote(gzipVersion)))
		}
		w, _ := zw.Create(e.Name())
		w.Write(b)
	}
	zw.Close()
	f.Close()
	db, err := Load(zp)
	if err != nil {
		t.Fatal(err)
	}
	r := db.Match(inv, info)
	// The fixture is up to date with bookworm security: openssh, openssl and
	// glibc carry the fixes; tar's unfixed CVE and gzip's listed version match.
	got := ids(r.Matches)
	want := []string{"DEBIAN-CVE-2005-2541 tar ", "VOUCH-TEST-LIST-1 gzip "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("fixture matches = %q, want %q (notes %v)", got, want, r.Notes)
	}
	if _, err := Load(filepath.Join("testdata", "osv", "not-json.json")); err == nil {
		t.Error("a non-zip, non-directory loaded")
	}
	empty := t.TempDir()
	if _, err := Load(empty); err == nil {
		t.Error("an empty directory loaded")
	}
}

func TestEcosystems(t *testing.T) {
	for _, tc := range []struct {
		info *osrelease.Info
		eco  string
		want bool
	}{
		{debian12, "Debian:12", true},
		{debian12, "Debian", true},
		{debian12, "Debian:11", false},
		{&osrelease.Info{ID: "alpine", VersionID: "3.19.1"}, "Alpine:v3.19", true},
		{&osrelease.Info{ID: "alpine", VersionID: "3.19.1"}, "Alpine:v3.1", false},
		{&osrelease.Info{ID: "ubuntu", VersionID: "22.04"}, "Ubuntu:22.04:LTS", true},
		{&osrelease.Info{ID: "ubuntu", VersionID: "22.04"}, "Ubuntu:Pro:22.04:LTS", true},
		{&osrelease.Info{ID: "almalinux", VersionID: "9.3"}, "AlmaLinux:9", true},
		{&osrelease.Info{ID: "azurelinux", VersionID: "3.0"}, "Azure Linux:3", true},
	} {
		_, ok := EcosystemMatcher(tc.info)
		if got := ok(tc.eco); got != tc.want {
			t.Errorf("%s %s vs %q = %v", tc.info.ID, tc.info.VersionID, tc.eco, got)
		}
	}
}
