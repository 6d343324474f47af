package pkgcheck

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"github.com/vouch-dev/vouch/internal/vuln"
)

// runSuite runs the packages suite against the target at path and returns the
// findings by check ID.
func runSuite(t *testing.T, path string, db *vuln.DB) map[string][]finding.Finding {
	t.Helper()
	tg, err := target.Open(path, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	env := &check.Env{Target: tg}
	if db != nil {
		WithVulnDB(env, db)
	}
	out := map[string][]finding.Finding{}
	for _, f := range check.Run(context.Background(), env, Checks()) {
		out[f.ID] = append(out[f.ID], f)
	}
	return out
}

func statuses(fs []finding.Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, string(f.Status))
	}
	return strings.Join(s, ",")
}

// TestSuiteOnFixtureImage runs the suite on the Debian disk image as built:
// the inventory reads, every file matches, nothing is unowned, the three
// sources of the stock sources.list lack signed-by, and with an OSV database the known vulnerabilities of
// the fixture's packages are failing findings, while an unreadable OSV file is
// an error finding naming it.
func TestSuiteOnFixtureImage(t *testing.T) {
	testfixtures.NeedFixtures(t)
	db, err := vuln.Load(filepath.Join("..", "vuln", "testdata", "osv"))
	if err != nil {
		t.Fatal(err)
	}
	got := runSuite(t, testfixtures.Path(t, "debian.raw"), db)
	for id, want := range map[string]string{
		"packages.inventory":           "pass",
		"packages.integrity":           "pass",
		"packages.unowned-executables": "pass",
		"packages.rpm-signatures":      "not-applicable",
		// Debian's stock sources.list binds no source to a keyring.
		"packages.apt-sources-signed": "fail,fail,fail",
	} {
		if s := statuses(got[id]); s != want {
			t.Errorf("%s: %s, want %s: %+v", id, s, want, got[id])
		}
	}
	var fails, errs []string
	for _, f := range got["packages.known-vulnerabilities"] {
		switch f.Status {
		case finding.Fail:
			fails = append(fails, f.Message)
		case finding.Error:
			errs = append(errs, f.Subject)
		}
	}
	if !strings.Contains(strings.Join(fails, "\n"), "DEBIAN-CVE-2005-2541: tar ") {
		t.Errorf("vulnerabilities: %v", fails)
	}
	if !strings.Contains(strings.Join(errs, " "), "not-json.json") {
		t.Errorf("the unreadable OSV file is not an error finding: %v", errs)
	}
	// Without a database the check is not applicable and says how to give one.
	got = runSuite(t, testfixtures.Path(t, "rootfs"), nil)
	if f := got["packages.known-vulnerabilities"]; statuses(f) != "not-applicable" || !strings.Contains(f[0].Message, "--db") {
		t.Errorf("without a database: %+v", f)
	}
}

// TestSuiteBadDatabase: a status file with nothing readable is an error
// finding for every check that needs the inventory, not a pass.
func TestSuiteBadDatabase(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.MkdirAll(filepath.Join(dir, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/os-release"), []byte("ID=debian\nVERSION_ID=12\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "var/lib/dpkg/status"), []byte("garbage without structure\n"), 0o644)
	db, err := vuln.Load(filepath.Join("..", "vuln", "testdata", "osv"))
	if err != nil {
		t.Fatal(err)
	}
	got := runSuite(t, dir, db)
	for _, id := range []string{"packages.inventory", "packages.integrity", "packages.known-vulnerabilities"} {
		if s := statuses(got[id]); !strings.Contains(s, "error") || strings.Contains(s, "pass") {
			t.Errorf("%s on an unreadable status file: %s %+v", id, s, got[id])
		}
	}
}
