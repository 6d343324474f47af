package remediate

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/rootfs"
)

// state is the engine's view of a root in these tests.
type state struct {
	root *rootfs.FS
}

func newState(root *rootfs.FS, _ bool) *state { return &state{root: root} }

// fileRule passes when rel holds line; its fix sets the line in place of any
// line starting with prefix.
func fileRule(id, rel, prefix, line string) Rule[*state] {
	return Rule[*state]{
		ID: id,
		Audit: func(s *state) check.Result {
			b, err := fs.ReadFile(s.root, rel)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return check.Result{Status: finding.Error, Message: err.Error()}
			}
			for _, l := range strings.Split(string(b), "\n") {
				if l == line {
					return check.Result{Status: finding.Pass, Message: rel + " has " + line}
				}
			}
			return check.Result{Status: finding.Fail, Message: rel + " lacks " + line}
		},
		Fix: func(_ *state, c *Changer) error { return c.SetKeyLine(rel, line, `^`+prefix) },
	}
}

func modeRule(id, rel string, want fs.FileMode) Rule[*state] {
	return Rule[*state]{
		ID: id,
		Audit: func(s *state) check.Result {
			info, err := s.root.Stat(rel)
			if err != nil {
				return check.Result{Status: finding.Error, Message: err.Error()}
			}
			if info.Mode().Perm() == want {
				return check.Result{Status: finding.Pass, Message: "mode ok"}
			}
			return check.Result{Status: finding.Fail, Message: "mode " + info.Mode().String()}
		},
		Fix: func(_ *state, c *Changer) error { return c.Chmod(rel, want) },
	}
}

// TestRun drives the engine with two rules of its own: a dry run shows the
// diff and writes nothing; the real run writes atomically, keeps the mode,
// backs up the original with a MANIFEST; a second run changes nothing; a
// rule without a fix is left to a person; an image is refused.
func TestRun(t *testing.T) {
	root := t.TempDir()
	put := func(rel, text string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	put("etc/os-release", "ID=debian\n", 0o644)
	put("etc/x.conf", "# x\nlimit=9\n", 0o600)
	put("etc/y", "y\n", 0o666)
	manual := Rule[*state]{ID: "t.manual", Remedy: "Ask a person.", Audit: func(*state) check.Result {
		return check.Result{Status: finding.Fail, Message: "no"}
	}}
	rules := []Rule[*state]{fileRule("t.limit", "etc/x.conf", "limit=", "limit=1"), fileRule("t.new", "etc/z.conf", "z=", "z=1"),
		modeRule("t.mode", "etc/y", 0o644), manual}

	var out bytes.Buffer
	dry, err := Run(context.Background(), root, rules, newState, true, &out)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Fixed != 3 || dry.Manual != 1 || dry.BackupDir != "" {
		t.Fatalf("dry run: %+v\n%s", dry, out.String())
	}
	for _, want := range []string{"--- a/etc/x.conf", "-limit=9", "+limit=1", "--- /dev/null", "+++ b/etc/z.conf",
		"chmod 0644 /etc/y   (was 0666)", "# t.manual: not fixed: vouch cannot make this change safely. Ask a person."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out.String())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/x.conf")); string(b) != "# x\nlimit=9\n" {
		t.Fatalf("the dry run wrote etc/x.conf: %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, BackupRoot)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the dry run made %s: %v", BackupRoot, err)
	}

	out.Reset()
	sum, err := Run(context.Background(), root, rules, newState, false, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Fixed != 3 || sum.Changes != 3 || sum.Errors != 0 || sum.BackupDir == "" {
		t.Fatalf("run: %+v\n%s", sum, out.String())
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/x.conf")); string(b) != "# x\nlimit=1\n" {
		t.Errorf("etc/x.conf: %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc/x.conf")); fi.Mode().Perm() != 0o600 {
		t.Errorf("etc/x.conf mode %v, want it kept at 0600", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc/y")); fi.Mode().Perm() != 0o644 {
		t.Errorf("etc/y mode %v", fi.Mode())
	}
	if b, err := os.ReadFile(filepath.Join(sum.BackupDir, "etc/x.conf")); err != nil || string(b) != "# x\nlimit=9\n" {
		t.Errorf("backup of etc/x.conf: %q %v", b, err)
	}
	man, _ := os.ReadFile(filepath.Join(sum.BackupDir, "MANIFEST"))
	for _, want := range []string{"write\t/etc/x.conf\tmode=0600", "created\t/etc/z.conf", "chmod\t/etc/y\tmode=0666"} {
		if !strings.Contains(string(man), want) {
			t.Errorf("MANIFEST lacks %q:\n%s", want, man)
		}
	}
	if info, err := os.Stat(filepath.Join(root, BackupRoot)); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("backup root: %v %v", info, err)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "etc", ".*.vouch-*")); len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}

	out.Reset()
	again, err := Run(context.Background(), root, rules, newState, false, &out)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fixed != 0 || again.Changes != 0 || again.BackupDir != "" || again.AlreadyPassing != 3 {
		t.Errorf("second run: %+v\n%s", again, out.String())
	}

	img := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), img, rules, newState, false, &out); !errors.Is(err, ErrImage) {
		t.Errorf("image: %v, want ErrImage", err)
	}
}

// TestRunKeepsModeZero: a file of mode 0000 (/etc/shadow on Red Hat systems)
// rewritten by a fix stays 0000.
func TestRunKeepsModeZero(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=rhel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	shadow := filepath.Join(root, "etc/shadow")
	if err := os.WriteFile(shadow, []byte("root:!:19000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shadow, 0); err != nil {
		t.Fatal(err)
	}
	rules := []Rule[*state]{fileRule("t.shadow", "etc/shadow", "x:", "x:!:19000::::::")}
	var out bytes.Buffer
	sum, err := Run(context.Background(), root, rules, newState, false, &out)
	if err != nil || sum.Changes != 1 {
		t.Fatalf("run: %+v %v\n%s", sum, err, out.String())
	}
	if fi, err := os.Stat(shadow); err != nil || fi.Mode().Perm() != 0 {
		t.Errorf("etc/shadow mode %v (%v), want 0000 kept", fi.Mode(), err)
	}
}
