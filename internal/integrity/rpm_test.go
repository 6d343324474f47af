package integrity

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestRPMVerifyAgainstRPM: on a real rpm root, vouch's file digests agree with
// rpm -V.
func TestRPMVerifyAgainstRPM(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	for _, tool := range []string{"rpm", "rpmbuild", "rpmsign", "gpg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install rpm gnupg", tool)
		}
	}
	dir := t.TempDir()
	script, _ := filepath.Abs(filepath.Join("..", "pkgsig", "testdata", "build-rpm-root.sh"))
	if out, err := exec.Command("bash", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("build-rpm-root.sh: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "root")
	if res := verifyDir(t, root, Options{}); len(res.Problems) != 0 || res.Files != 2 {
		t.Fatalf("clean rpm root: %+v", res)
	}
	os.WriteFile(filepath.Join(root, "usr/bin/vouch-hello"), []byte("#!/bin/sh\necho evil\n"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/vouch-hello.conf"), []byte("conf=2\n"), 0o644)
	res := verifyDir(t, root, Options{})
	var mine []string
	for _, p := range res.Problems {
		c := ""
		if p.Conffile {
			c = " conffile"
		}
		mine = append(mine, p.Problem+" "+p.Path+c)
	}
	sort.Strings(mine)
	out, _ := exec.Command("rpm", "--root", root, "--dbpath", "/usr/lib/sysimage/rpm", "-V", "--nodeps", "vouch-hello").Output()
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		conf := ""
		if len(f) == 3 && f[1] == "c" {
			conf = " conffile"
		}
		switch {
		case f[0] == "missing":
			want = append(want, Missing+" "+f[len(f)-1]+conf)
		case len(f[0]) == 9 && f[0][2] == '5':
			want = append(want, Modified+" "+f[len(f)-1]+conf)
		}
	}
	sort.Strings(want)
	if strings.Join(mine, "|") != strings.Join(want, "|") || len(want) != 2 {
		t.Errorf("vouch %v, rpm -V %v", mine, want)
	}
	os.Remove(filepath.Join(root, "etc/vouch-hello.conf"))
	res = verifyDir(t, root, Options{})
	if len(res.Problems) != 2 || res.Problems[0].Problem != Missing || !res.Problems[0].Conffile {
		t.Errorf("after removing the conffile: %+v", res.Problems)
	}
}
