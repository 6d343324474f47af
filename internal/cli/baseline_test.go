package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// baselineRoot writes a tiny Debian root directory.
func baselineRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/os-release":       "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
		"var/lib/dpkg/status":  "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2\n\n",
		"etc/ssh/sshd_config":  "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\n",
		"etc/sysctl.d/10.conf": "kernel.randomize_va_space = 1\n",
	}
	for p, s := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestBaselineListJSON(t *testing.T) {
	code, out, errs := run(t, "baseline", "list", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rules []map[string]any
	if err := json.Unmarshal([]byte(out), &rules); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, out[:min(len(out), 300)])
	}
	suites := map[string]int{}
	remediable := 0
	for _, r := range rules {
		for _, k := range []string{"id", "suite", "title", "severity", "remediable"} {
			if _, ok := r[k]; !ok {
				t.Fatalf("rule %v lacks %q", r["id"], k)
			}
		}
		id, suite := r["id"].(string), r["suite"].(string)
		if !strings.HasPrefix(id, suite+".") {
			t.Errorf("%s: suite %s", id, suite)
		}
		if _, ok := r["remediable"].(bool); !ok {
			t.Errorf("%s: remediable is not a boolean", id)
		}
		if r["remediable"] == true {
			remediable++
		}
		suites[suite]++
	}
	if suites["baseline"] < 170 || suites["hardening"] == 0 || suites["cloud-image"] == 0 || remediable == 0 {
		t.Errorf("suites %v, %d remediable", suites, remediable)
	}
	code, out, _ = run(t, "baseline", "list", "--suite", "cloud-image", "--format", "json")
	if code != 0 || strings.Contains(out, `"suite": "baseline"`) {
		t.Errorf("--suite cloud-image: exit %d", code)
	}
	if code, _, errs := run(t, "baseline", "list", "--suite", "nope"); code != ExitError || !strings.Contains(errs, "unknown suite") {
		t.Errorf("unknown suite: exit %d %s", code, errs)
	}
}

func TestBaselineAuditAndRemediate(t *testing.T) {
	root := baselineRoot(t)
	code, out, errs := run(t, "baseline", "audit", "--suite", "baseline", "--format", "json", "--fail-on", "high", root)
	if code != ExitFindings {
		t.Fatalf("audit: exit %d, want 1 (ASLR and root login fail)\n%s", code, errs)
	}
	var rep struct {
		Findings []struct{ ID, Status, Message string }
		Summary  struct{ Suites []struct{ Suite string } }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	st := map[string]string{}
	for _, f := range rep.Findings {
		st[f.ID] = f.Status
	}
	if st["baseline.aslr"] != "fail" || st["baseline.sshd-permit-root-login"] != "fail" {
		t.Errorf("aslr %s, root login %s", st["baseline.aslr"], st["baseline.sshd-permit-root-login"])
	}
	code, out, errs = run(t, "baseline", "remediate", "--dry-run", "--rules", "baseline.aslr,baseline.sshd-permit-root-login", root)
	if code != 0 || !strings.Contains(out, "+kernel.randomize_va_space = 2") || !strings.Contains(out, "would be fixed") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/ssh/sshd_config.d/60-vouch.conf")); err == nil {
		t.Fatal("the dry run wrote a file")
	}
	code, out, errs = run(t, "baseline", "remediate", "--rules", "baseline.aslr,baseline.sshd-permit-root-login", root)
	if code != 0 || !strings.Contains(out, "+PermitRootLogin no") {
		t.Fatalf("remediate: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = run(t, "baseline", "remediate", "--format", "json", "--rules", "baseline.aslr,baseline.sshd-permit-root-login", root)
	if code != 0 || !strings.Contains(out, `"fixed": 0`) || !strings.Contains(out, `"alreadyPassing": 2`) {
		t.Errorf("second run: exit %d\n%s", code, out)
	}
	img := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, "baseline", "remediate", img); code != ExitError || !strings.Contains(errs, "does not modify disk images") {
		t.Errorf("image: exit %d: %s", code, errs)
	}
	if code, _, errs := run(t, "baseline", "remediate", "--rules", "baseline.nope", root); code != ExitError || !strings.Contains(errs, "unknown rule") {
		t.Errorf("unknown rule: exit %d: %s", code, errs)
	}
}

func TestScanHardeningSuite(t *testing.T) {
	root := baselineRoot(t)
	code, out, errs := run(t, "scan", "--suite", "hardening", "--format", "json", "--fail-on", "none", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep struct {
		Findings []struct{ ID, Suite, Status string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range rep.Findings {
		if f.Suite != "hardening" {
			t.Errorf("%s in a hardening scan", f.ID)
		}
		if f.ID == "hardening.sysctl-kernel-randomize-va-space" && f.Status != "fail" {
			t.Errorf("randomize_va_space: %s", f.Status)
		}
		n++
	}
	if n < 50 {
		t.Errorf("%d hardening findings", n)
	}
}
