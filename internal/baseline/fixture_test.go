package baseline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/target"
)

// fixtures returns the fixture directory: $VOUCH_FIXTURES or the repo's
// .cache/fixtures. The Debian 12 root (rootfs/) must exist.
func fixtures(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VOUCH_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", ".cache", "fixtures")
	}
	abs, _ := filepath.Abs(dir)
	if _, err := os.Stat(filepath.Join(abs, "rootfs", "etc", "os-release")); err != nil {
		t.Fatalf("no Debian fixture root at %s/rootfs: run scripts/build-fixtures.sh rootfs (needs mmdebstrap)", abs)
	}
	return abs
}

func auditDir(t testing.TB, dir string, rules []Rule) map[string]check.Result {
	t.Helper()
	tg, err := target.Open(dir, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	s := StateFor(&check.Env{Target: tg})
	out := map[string]check.Result{}
	for _, r := range rules {
		out[r.ID] = r.Evaluate(s)
	}
	return out
}

func TestFixtureAudit(t *testing.T) {
	root := filepath.Join(fixtures(t), "rootfs")
	tg, err := target.Open(root, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	fs := check.Run(context.Background(), &check.Env{Target: tg}, Checks())
	counts := map[string]map[finding.Status]int{}
	for _, f := range fs {
		if counts[f.Suite] == nil {
			counts[f.Suite] = map[finding.Status]int{}
		}
		counts[f.Suite][f.Status]++
		if f.Status == finding.Error {
			t.Errorf("%s: error on the fixture: %s", f.ID, f.Message)
		}
	}
	t.Logf("fixture audit: %v", counts)
	if len(fs) != len(Rules()) {
		t.Errorf("%d findings for %d rules", len(fs), len(Rules()))
	}
	for _, suite := range []string{SuiteBaseline, SuiteHardening, SuiteCloudImage} {
		c := counts[suite]
		if c[finding.Pass] == 0 || c[finding.Fail] == 0 {
			t.Errorf("%s: %v: a Debian minbase root passes some rules and fails others", suite, c)
		}
	}
	// Known facts of the fixture.
	want := map[string]finding.Status{
		"baseline.aslr":                          finding.Pass,
		"baseline.sshd-permit-root-login":        finding.Fail, // Debian's default prohibit-password
		"baseline.sshd-x11-forwarding":           finding.Fail, // Debian's sshd_config sets yes
		"baseline.module-usb-storage-disabled":   finding.Fail,
		"baseline.perm-shadow":                   finding.Pass,
		"baseline.svc-avahi-absent":              finding.Pass,
		"cloud-image.no-ssh-host-keys":           finding.Fail, // openssh-server's postinst made them
		"cloud-image.dhcp-networking":            finding.Pass, // systemd-networkd 20-wired.network
		"cloud-image.64-bit":                     finding.Pass,
		"cloud-image.no-passwords":               finding.Pass, // root locked
		"hardening.kconfig-strict-kernel-rwx":    finding.Pass,
		"hardening.sysctl-fs-protected-symlinks": finding.Pass, // usr/lib/sysctl.d/99-protect-links.conf
		"hardening.elf-nx":                       finding.Pass,
	}
	byID := map[string]string{}
	for _, f := range fs {
		byID[f.ID] = string(f.Status) + ": " + f.Message
	}
	for id, st := range want {
		if !strings.HasPrefix(byID[id], string(st)+":") {
			t.Errorf("%s = %s, want %s", id, byID[id], st)
		}
	}
}

// treeSum is a checksum of a tree: every entry's path, mode, owner, size and
// modification time, and the content of every regular file under etc/.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st, _ := info.Sys().(*syscall.Stat_t)
		fmt.Fprintf(h, "%s %v %d:%d %d %d\n", rel, info.Mode(), st.Uid, st.Gid, info.Size(), info.ModTime().UnixNano())
		if info.Mode().IsRegular() && strings.HasPrefix(rel, "etc/") {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestFixtureRemediate(t *testing.T) {
	src := filepath.Join(fixtures(t), "rootfs")
	root := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", src, root).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	rules := Rules()
	before := auditDir(t, root, rules)

	// Dry run: prints changes, changes nothing.
	sum0 := treeSum(t, root)
	var dry bytes.Buffer
	drySum, err := Remediate(context.Background(), root, rules, true, &dry)
	if err != nil {
		t.Fatal(err)
	}
	if got := treeSum(t, root); got != sum0 {
		t.Fatal("the dry run changed the tree")
	}
	if drySum.Fixed == 0 || !strings.Contains(dry.String(), "+++ b/etc/sysctl.d/60-vouch-hardening.conf") {
		t.Fatalf("dry run planned nothing:\n%s", dry.String())
	}

	// Keep the originals of etc/ to compare with the backups.
	orig := map[string][]byte{}
	_ = filepath.WalkDir(filepath.Join(root, "etc"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			orig[rel], _ = os.ReadFile(p)
		}
		return nil
	})

	var out bytes.Buffer
	sum, err := Remediate(context.Background(), root, rules, false, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("remediate: fixed %d, passing %d, n/a %d, manual %d, errors %d, changes %d",
		sum.Fixed, sum.AlreadyPassing, sum.NotApplicable, sum.Manual, sum.Errors, sum.Changes)
	if sum.Errors != 0 {
		t.Errorf("%d errors:\n%s", sum.Errors, out.String())
	}
	if sum.Fixed != drySum.Fixed {
		t.Errorf("fixed %d, the dry run planned %d", sum.Fixed, drySum.Fixed)
	}
	// Backups: every changed file's original, byte for byte, and a MANIFEST.
	man, err := os.ReadFile(filepath.Join(sum.BackupDir, "MANIFEST"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(man)), "\n") {
		f := strings.Split(l, "\t")
		rel := strings.TrimPrefix(f[1], "/")
		if f[0] == "created" {
			if _, had := orig[rel]; had {
				t.Errorf("%s: recorded as created but existed", rel)
			}
			continue
		}
		if o, had := orig[rel]; had && f[0] == "write" {
			b, err := os.ReadFile(filepath.Join(sum.BackupDir, rel))
			if err != nil || !bytes.Equal(b, o) {
				t.Errorf("backup of %s differs from the original (%v)", rel, err)
			}
		}
	}
	if info, err := os.Stat(filepath.Join(root, remediate.BackupRoot)); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("backup root: %v %v", info, err)
	}

	// Every fixed rule passes now.
	after := auditDir(t, root, rules)
	for _, o := range sum.Rules {
		if o.Outcome == "fixed" && after[o.ID].Status != finding.Pass {
			t.Errorf("%s was fixed but audits %s: %s", o.ID, after[o.ID].Status, after[o.ID].Message)
		}
	}
	improved := 0
	for id, r := range after {
		if before[id].Status == finding.Fail && r.Status == finding.Pass {
			improved++
		}
		if before[id].Status == finding.Pass && r.Status != finding.Pass {
			t.Errorf("%s passed before remediation and %s after: %s", id, r.Status, r.Message)
		}
	}
	if improved < sum.Fixed {
		t.Errorf("%d rules went from fail to pass, %d were fixed", improved, sum.Fixed)
	}

	// Idempotence: a second run changes nothing.
	sum1 := treeSum(t, root)
	out.Reset()
	again, err := Remediate(context.Background(), root, rules, false, &out)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fixed != 0 || again.Changes != 0 || again.BackupDir != "" {
		t.Errorf("second run changed things: %+v\n%s", again, out.String())
	}
	if treeSum(t, root) != sum1 {
		t.Error("the second run changed the tree")
	}
}

func BenchmarkAuditFixture(b *testing.B) {
	root := filepath.Join(fixtures(b), "rootfs")
	rules := append(RulesOf(SuiteBaseline), RulesOf(SuiteHardening)...)
	for i := 0; i < b.N; i++ {
		tg, err := target.Open(root, target.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s := StateFor(&check.Env{Target: tg})
		for _, r := range rules {
			r.Evaluate(s)
		}
		tg.Close()
	}
}
