package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func TestPackagesCommands(t *testing.T) {
	testfixtures.NeedFixtures(t)
	root := testfixtures.Path(t, "rootfs")
	code, out, errs := run(t, "packages", "list", "--format", "json", root)
	if code != ExitOK {
		t.Fatalf("packages list: exit %d: %s", code, errs)
	}
	var list []struct{ Name, Version, Architecture, Manager string }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range list {
		if p.Manager != "dpkg" {
			t.Errorf("manager %q", p.Manager)
		}
		got = append(got, p.Name+"\t"+p.Version+"\t"+p.Architecture)
	}
	sort.Strings(got)
	dq, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Package}\t${Version}\t${Architecture}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(dq)), "\n")
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("packages list differs from dpkg-query -W")
	}
	// The same list from the disk images of that root, read without mounting.
	for _, img := range []string{"debian.raw", "debian.qcow2"} {
		code, out, errs := run(t, "packages", "list", "--format", "json", testfixtures.Path(t, img))
		var list []struct{ Name, Version, Architecture string }
		if err := json.Unmarshal([]byte(out), &list); code != ExitOK || err != nil {
			t.Fatalf("packages list %s: exit %d, %v: %s", img, code, err, errs)
		}
		var fromImage []string
		for _, p := range list {
			fromImage = append(fromImage, p.Name+"\t"+p.Version+"\t"+p.Architecture)
		}
		sort.Strings(fromImage)
		if strings.Join(fromImage, "\n") != strings.Join(want, "\n") {
			t.Errorf("packages list %s differs from dpkg-query -W on the root", img)
		}
	}

	code, out, errs = run(t, "packages", "verify", "--format", "json", root)
	if code != ExitOK || strings.TrimSpace(out) != "[]" {
		t.Errorf("verify on the clean fixture: exit %d, %s %s", code, out, errs)
	}
	code, out, _ = run(t, "sbom", "--format", "cyclonedx-json", "--created", "2026-01-02T03:04:05Z", root)
	if code != ExitOK || !strings.Contains(out, `"specVersion": "1.5"`) || !strings.Contains(out, "2026-01-02T03:04:05Z") {
		t.Errorf("sbom: exit %d", code)
	}
	if code, _, _ := run(t, "sbom", root); code != ExitError {
		t.Errorf("sbom without --format: exit %d", code)
	}
	db := filepath.Join("..", "vuln", "testdata", "osv")
	code, out, errs = run(t, "vuln", "--db", db, "--format", "json", root)
	if code != ExitFindings || !strings.Contains(out, "DEBIAN-CVE-2005-2541") || !strings.Contains(errs, "not-json.json") {
		t.Errorf("vuln: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, _ := run(t, "vuln", root); code != ExitError {
		t.Errorf("vuln without --db: exit %d", code)
	}
}

// TestPackagesBadInput: a corrupt stanza and a missing md5sums file are reported
// with their file and the rest goes on; a status file with nothing readable
// exits 2.
func TestPackagesBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/os-release", "ID=debian\nVERSION_ID=12\n")
	write("var/lib/dpkg/status", "Package: good\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\nPackage: bad\nno colon here\n\nPackage: nosums\nStatus: install ok installed\nVersion: 2\nArchitecture: all\n")
	write("var/lib/dpkg/info/good.list", "/usr/bin/good\n/usr/bin/caf\xe9\n")
	write("var/lib/dpkg/info/good.md5sums", "d41d8cd98f00b204e9800998ecf8427e  usr/bin/good\nd41d8cd98f00b204e9800998ecf8427e  usr/bin/caf\xe9\n")
	write("var/lib/dpkg/info/nosums.list", "/usr/share/x\n")
	write("usr/bin/good", "")
	write("usr/bin/caf\xe9", "changed")
	code, out, errs := run(t, "packages", "list", "--format", "json", dir)
	if code != ExitOK || !strings.Contains(out, `"good"`) || !strings.Contains(errs, "var/lib/dpkg/status:7: corrupt stanza") {
		t.Errorf("list: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = run(t, "packages", "verify", "--format", "json", dir)
	var probs []struct{ Path, Package, Problem string }
	json.Unmarshal([]byte(out), &probs)
	if code != ExitOK || len(probs) != 0 {
		t.Errorf("verify: exit %d %+v\n%s", code, probs, errs)
	}
	for _, w := range []string{"no md5sums for nosums", `caf\xe9`, "not valid UTF-8"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errs)
		}
	}
	// Missing and modified are still found for such names and the others.
	os.Remove(filepath.Join(dir, "usr/bin/caf\xe9"))
	write("usr/bin/good", "changed")
	code, out, _ = run(t, "packages", "verify", "--format", "json", dir)
	probs = nil
	json.Unmarshal([]byte(out), &probs)
	if code != ExitFindings || len(probs) != 2 || probs[0].Path != `/usr/bin/caf\xe9` || probs[0].Problem != "missing" || probs[1].Problem != "modified" {
		t.Errorf("verify after changes: exit %d %+v", code, probs)
	}
	// An rpm database of a format vouch does not know, beside a good dpkg
	// database: a warning naming it, and the dpkg packages are listed.
	write("var/lib/rpm/Packages", "this is not an rpm database of any format vouch knows")
	code, out, errs = run(t, "packages", "list", "--format", "json", dir)
	if code != ExitOK || !strings.Contains(out, `"good"`) || !strings.Contains(errs, "var/lib/rpm/Packages") || !strings.Contains(errs, "unknown rpm database format") {
		t.Errorf("unknown rpmdb beside dpkg: exit %d\n%s\n%s", code, out, errs)
	}
	// Nothing readable at all: exit 2, each problem named.
	write("var/lib/dpkg/status", "garbage without structure\n")
	if code, _, errs := run(t, "packages", "list", dir); code != ExitError || !strings.Contains(errs, "var/lib/dpkg/status:1") || !strings.Contains(errs, "var/lib/rpm/Packages") {
		t.Errorf("unreadable status: exit %d %s", code, errs)
	}
}

// TestScanVulnDB: vouch scan --db gives the packages suite's vulnerability
// check the same OSV database vouch vuln reads; an OSV file that is not JSON
// is an error finding naming the file, the rest is matched; no --db makes the
// check not applicable; an unreadable --db is exit 2 before anything is scanned.
func TestScanVulnDB(t *testing.T) {
	testfixtures.NeedFixtures(t)
	root := testfixtures.Path(t, "rootfs")
	db := filepath.Join("..", "vuln", "testdata", "osv")
	type finding struct{ ID, Status, Subject, Message string }
	scan := func(args ...string) (int, []finding, string) {
		t.Helper()
		code, out, errs := run(t, append([]string{"scan", "--suite", "packages", "--format", "json", "--fail-on", "none"}, args...)...)
		var r struct{ Findings []finding }
		if code == ExitOK {
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v: %s", err, errs)
			}
		}
		return code, r.Findings, errs
	}
	code, fs, errs := scan("--db", db, root)
	if code != ExitOK {
		t.Fatalf("scan --db: exit %d: %s", code, errs)
	}
	var vulns, broken []string
	for _, f := range fs {
		if f.ID != "packages.known-vulnerabilities" {
			continue
		}
		switch f.Status {
		case "fail":
			vulns = append(vulns, f.Message)
		case "error":
			broken = append(broken, f.Subject)
		}
	}
	if !strings.Contains(strings.Join(vulns, "\n"), "DEBIAN-CVE-2005-2541") {
		t.Errorf("scan --db found %v", vulns)
	}
	if !strings.Contains(strings.Join(broken, " "), "not-json.json") || !strings.Contains(errs, "not-json.json") {
		t.Errorf("the OSV file that is not JSON is not reported: findings %v, stderr %s", broken, errs)
	}
	// The same matches as vouch vuln.
	_, out, _ := run(t, "vuln", "--db", db, "--format", "json", root)
	var matches []struct{ ID string }
	json.Unmarshal([]byte(out), &matches)
	if len(matches) != len(vulns) || len(matches) == 0 {
		t.Errorf("vouch vuln found %d, vouch scan --db %d", len(matches), len(vulns))
	}

	code, fs, _ = scan(root)
	for _, f := range fs {
		if f.ID == "packages.known-vulnerabilities" && (f.Status != "not-applicable" || !strings.Contains(f.Message, "--db")) {
			t.Errorf("without --db: %+v", f)
		}
	}
	if code != ExitOK {
		t.Errorf("scan without --db: exit %d", code)
	}
	if code, out, errs := run(t, "scan", "--db", filepath.Join(t.TempDir(), "nope.zip"), root); code != ExitError || out != "" || !strings.Contains(errs, "nope.zip") {
		t.Errorf("scan --db missing: exit %d, %q, %q", code, out, errs)
	}
}
