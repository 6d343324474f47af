package integrity

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// copyRoot copies the Debian 12 fixture root so the test can change it.
func copyRoot(t *testing.T) string {
	t.Helper()
	src := testfixtures.Path(t, "rootfs")
	dst := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s: %v\n%s", src, err, out)
	}
	return dst
}

func verifyDir(t *testing.T, dir string, opts Options) *Result {
	t.Helper()
	tg, err := target.Open(dir, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	inv, err := pkgdb.Read(context.Background(), tg.Root, pkgdb.Options{Files: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(context.Background(), tg.Root, inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

var debsumsLine = regexp.MustCompile(`^debsums: (changed|missing) file (\S.*) \(from (\S+) package\)$|^debsums: can't check (\S+) file (\S.*) \(not a regular file\)$`)

// runDebsums runs debsums --root ROOT -s with extra flags and returns its
// findings as "problem path package" strings.
func runDebsums(t *testing.T, root string, flags ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("debsums"); err != nil {
		t.Fatal("debsums is not installed: apt-get install debsums")
	}
	args := append([]string{"--root", root, "-s"}, flags...)
	cmd := exec.Command("debsums", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	_ = cmd.Run() // exits 2 when it finds problems
	var out []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if line == "" {
			continue
		}
		m := debsumsLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected debsums output: %q", line)
		}
		if m[1] != "" {
			what := map[string]string{"changed": Modified, "missing": Missing}[m[1]]
			out = append(out, fmt.Sprintf("%s %s %s", what, strings.TrimPrefix(m[2], root), m[3]))
		} else {
			out = append(out, fmt.Sprintf("not-regular %s %s", strings.TrimPrefix(m[5], root), m[4]))
		}
	}
	sort.Strings(out)
	return out
}

// Where vouch and debsums --root ROOT -a differ, and who is right:
//
//   - A file replaced by a symlink: debsums follows it and hashes the target
//     ("changed" when the content differs, nothing when it is an identical copy);
//     vouch reports "replaced" with the link target. vouch is right: the path is
//     no longer what the package installed, and a symlink to an identical copy
//     can be repointed later. A file replaced by a directory: debsums says
//     "can't check ... (not a regular file)", vouch "replaced". Same finding.
//   - A package without an md5sums file: debsums skips it, conffiles included;
//     vouch reports the missing md5sums as an issue and still checks the
//     conffiles against the status file, which records their digests. vouch.
//   - A changed file listed by several packages (or diverted): debsums asks
//     dpkg-query -S, gets several owners (or a diversion line) and stays silent;
//     vouch reports it for each owner (checking a diverted file where the
//     diversion put it). vouch: a changed file is a changed file. Both stay
//     silent when another package has taken the file over (it is no longer in
//     the package's .list) or replaced it with the replacing package's digest.
//   - A file name that is not UTF-8: debsums reads it; vouch sees it in its
//     directory (missing, replaced) but io/fs cannot open it, so its content is
//     not hashed and an issue says so. debsums is right there.
//   - localepurge: debsums reads the *host's* /etc/locale.nopurge even with
//     --root; vouch does not apply it. vouch, for an offline target.
//
// The test below makes changes where both tools must agree exactly.
func TestDebsumsEqualityOnFixture(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Peers)
	root := copyRoot(t)
	write := func(p, content string, mode os.FileMode) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(p string) {
		if err := os.Remove(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	// Modified: a binary recorded as bin/bash (merged /usr: it lives at
	// usr/bin/bash), a script, and a conffile.
	write("usr/bin/bash", "#!/bin/sh\necho trojan\n", 0o755)
	write("usr/bin/bashbug", "tampered\n", 0o755)
	write("etc/default/ssh", "SSHD_OPTS=-o PermitRootLogin=yes\n", 0o644)
	// Missing: a documentation file and a conffile.
	remove("usr/share/doc/bash/README.gz")
	remove("etc/pam.d/sshd")
	// Replaced by a symlink to a file with other content, and by a directory.
	remove("usr/bin/clear_console")
	if err := os.Symlink("bashbug", filepath.Join(root, "usr/bin/clear_console")); err != nil {
		t.Fatal(err)
	}
	remove("usr/share/doc/bash/RBASH")
	if err := os.Mkdir(filepath.Join(root, "usr/share/doc/bash/RBASH"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Added: executables no package owns, and a non-executable file.
	write("usr/local/bin/backdoor", "#!/bin/sh\n", 0o755)
	write("usr/bin/dropper", "\x7fELF", 0o755)
	write("usr/lib/x86_64-linux-gnu/helper", "#!/bin/sh\n", 0o700)
	write("usr/bin/notes.txt", "not executable\n", 0o644)

	res := verifyDir(t, root, Options{Unowned: true})
	if len(res.Issues) > 0 {
		t.Errorf("issues on the fixture: %v", res.Issues)
	}
	var mine, mineConf, unowned []string
	for _, p := range res.Problems {
		switch p.Problem {
		case Unowned:
			unowned = append(unowned, p.Path)
			continue
		case Replaced:
			// vouch says "replaced"; debsums follows a symlink and hashes its
			// target ("changed" when the content differs, nothing when equal) and
			// cannot check a directory ("not a regular file"). Both flag these
			// files; vouch says what happened. Compared below.
			if strings.HasPrefix(p.Detail, "now a symlink") {
				mine = append(mine, fmt.Sprintf("%s %s %s", Modified, p.Path, p.Package))
			} else {
				mine = append(mine, fmt.Sprintf("not-regular %s %s", p.Path, p.Package))
			}
		default:
			mine = append(mine, fmt.Sprintf("%s %s %s", p.Problem, p.Path, p.Package))
		}
		if p.Conffile {
			mineConf = append(mineConf, fmt.Sprintf("%s %s %s", p.Problem, p.Path, p.Package))
		}
	}
	sort.Strings(mine)
	sort.Strings(mineConf)
	want := runDebsums(t, root, "-a")
	if strings.Join(mine, "\n") != strings.Join(want, "\n") {
		t.Errorf("vouch and debsums -a differ\nvouch:\n  %s\ndebsums:\n  %s", strings.Join(mine, "\n  "), strings.Join(want, "\n  "))
	}
	wantConf := runDebsums(t, root, "-e")
	if strings.Join(mineConf, "\n") != strings.Join(wantConf, "\n") {
		t.Errorf("conffiles: vouch and debsums -e differ\nvouch:\n  %s\ndebsums:\n  %s", strings.Join(mineConf, "\n  "), strings.Join(wantConf, "\n  "))
	}
	// The expected set, spelled out, so a change in both tools is noticed too.
	for _, w := range []string{
		"modified /bin/bash bash", "modified /usr/bin/bashbug bash", "modified /etc/default/ssh openssh-server",
		"missing /usr/share/doc/bash/README.gz bash", "missing /etc/pam.d/sshd openssh-server",
		"modified /usr/bin/clear_console bash", "not-regular /usr/share/doc/bash/RBASH bash",
	} {
		found := false
		for _, m := range mine {
			found = found || m == w
		}
		if !found {
			t.Errorf("expected %q among %v", w, mine)
		}
	}
	sort.Strings(unowned)
	wantUnowned := []string{"/usr/bin/dropper", "/usr/lib/x86_64-linux-gnu/helper", "/usr/local/bin/backdoor"}
	if strings.Join(unowned, " ") != strings.Join(wantUnowned, " ") {
		t.Errorf("unowned = %v, want %v", unowned, wantUnowned)
	}
	// dpkg-query -S agrees that nobody owns them (it exits 1 for unowned paths).
	for _, p := range wantUnowned {
		out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-S", p).CombinedOutput()
		if err == nil {
			t.Errorf("dpkg-query -S %s says it is owned: %s", p, out)
		}
	}
}

// TestUntouchedFixtureIsClean: debsums finds nothing on the fixture as built,
// and neither does vouch.
func TestUntouchedFixtureIsClean(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Peers)
	root := testfixtures.Path(t, "rootfs")
	res := verifyDir(t, root, Options{Unowned: true})
	if len(res.Problems) != 0 || len(res.Issues) != 0 {
		t.Errorf("problems on the untouched fixture: %v %v", res.Problems, res.Issues)
	}
	if res.Files < 10000 {
		t.Errorf("only %d files hashed", res.Files)
	}
	if got := runDebsums(t, root, "-a"); len(got) != 0 {
		t.Errorf("debsums finds %v on the untouched fixture", got)
	}
}

// TestImageMatchesDirectory: on the disk images (ext4 read by vouch's own
// reader, raw and qcow2; XFS read by the library) the inventory and the
// integrity check see exactly what they see on the extracted directory.
func TestImageMatchesDirectory(t *testing.T) {
	testfixtures.NeedFixtures(t)
	dir := testfixtures.Path(t, "rootfs")
	b := verifyDir(t, dir, Options{Unowned: true})
	for _, name := range []string{"debian.raw", "debian.qcow2", "debian-xfs.raw"} {
		a := verifyDir(t, testfixtures.Path(t, name), Options{Unowned: true})
		if a.Files != b.Files || a.Bytes != b.Bytes || a.Packages != b.Packages {
			t.Errorf("%s: %d files, %d bytes, %d packages; directory: %d, %d, %d", name, a.Files, a.Bytes, a.Packages, b.Files, b.Bytes, b.Packages)
		}
		if len(a.Problems) != 0 || len(a.Issues) != 0 {
			t.Errorf("%s: problems %v issues %v", name, a.Problems, a.Issues)
		}
	}
}
