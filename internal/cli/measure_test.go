package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

const measureLog = "../measure/testdata/ovmf-swtpm-debian12.log"

// TestMeasureReplayJSONContract checks the shape other checks rely on:
// {"pcrs":{"sha1":{"0":"<hex>",...},"sha256":{...},...},"events":[...]}, the
// banks present in the log, lower-case hex without 0x.
func TestMeasureReplayJSONContract(t *testing.T) {
	code, out, errs := run(t, "measure", "replay", "--format", "json", measureLog)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var doc struct {
		PCRs   map[string]map[string]string `json:"pcrs"`
		Events []map[string]any             `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int{"sha1": 40, "sha256": 64, "sha384": 96, "sha512": 128}
	if len(doc.PCRs) != 4 {
		t.Errorf("banks %v, want the log's four", len(doc.PCRs))
	}
	hexre := regexp.MustCompile(`^[0-9a-f]+$`)
	for bank, vals := range doc.PCRs {
		for idx, v := range vals {
			if len(v) != sizes[bank] || !hexre.MatchString(v) {
				t.Errorf("%s PCR %s = %q: want %d lower-case hex digits", bank, idx, v, sizes[bank])
			}
		}
		if vals["7"] == "" || vals["4"] == "" {
			t.Errorf("%s: no PCR 4 or 7", bank)
		}
	}
	if len(doc.Events) != 51 || doc.Events[0]["type"] == "" {
		t.Errorf("%d events", len(doc.Events))
	}
	if doc.PCRs["sha256"]["7"] != "75677db6f14082d3bfec4d14bdd75c8d72612ef6914ca99cd5a5997b7a21309d" {
		t.Errorf("sha256 PCR 7 = %s", doc.PCRs["sha256"]["7"])
	}
	// -o is --format.
	if code, out2, _ := run(t, "measure", "replay", "-o", "json", measureLog); code != 0 || out2 != out {
		t.Errorf("-o json differs from --format json (exit %d)", code)
	}
}

func TestMeasureReplayAgainstPCRs(t *testing.T) {
	code, out, errs := run(t, "measure", "replay", "--pcrs", "../measure/testdata/ovmf-swtpm-debian12.pcrs", measureLog)
	if code != 0 || !strings.Contains(out, "the log replays to the TPM's PCRs") {
		t.Fatalf("exit %d:\n%s%s", code, out, errs)
	}
	// A PCR the log does not reach: exit 1 naming it.
	b, _ := os.ReadFile("../measure/testdata/ovmf-swtpm-debian12.pcrs")
	bad := strings.Replace(string(b), "sha256 7 75677DB6", "sha256 7 00000000", 1)
	p := filepath.Join(t.TempDir(), "pcrs")
	os.WriteFile(p, []byte(bad), 0o600)
	code, out, _ = run(t, "measure", "replay", "--pcrs", p, measureLog)
	if code != 1 || !strings.Contains(out, "does not replay: PCR 7 (sha256)") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestMeasureBadInput(t *testing.T) {
	dir := t.TempDir()
	b, _ := os.ReadFile(measureLog)
	cut := filepath.Join(dir, "cut.log")
	os.WriteFile(cut, b[:3000], 0o600)
	code, _, errs := run(t, "measure", "replay", cut)
	if code != 2 || !strings.Contains(errs, "measure: "+cut+": event ") {
		t.Errorf("truncated log: exit %d, %q", code, errs)
	}
	if code, _, errs := run(t, "measure", "predict", measureLog); code != 2 || !strings.Contains(errs, "no change given") {
		t.Errorf("predict without a change: exit %d, %q", code, errs)
	}
	if code, _, _ := run(t, "measure", "replay", "--format", "xml", measureLog); code != 2 {
		t.Errorf("unknown format: exit %d", code)
	}
}

func TestMeasureExplainAndPredict(t *testing.T) {
	code, out, errs := run(t, "measure", "explain", measureLog)
	if code != 0 || !strings.Contains(out, "authority (firmware): db entry Microsoft Corporation UEFI CA 2011") {
		t.Fatalf("explain: exit %d\n%s%s", code, out, errs)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "crypttab"), []byte("root UUID=1 none luks,tpm2-device=auto\n"), 0o644)
	code, out, errs = run(t, "measure", "predict", "--sbat-level", "../../testdata/secureboot/SbatLevel_Variable.txt#latest", "--root", root, measureLog)
	if code != 0 || !strings.Contains(out, "SbatLevel sbat,1,2025051000") || !strings.Contains(out, "sealed disk root: will not unlock") {
		t.Errorf("predict: exit %d\n%s%s", code, out, errs)
	}
}

func TestMeasurePredictShimPackage(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	debs, _ := filepath.Glob(filepath.Join(testfixtures.Repo(), ".cache", "debs", "shim-signed_*.deb"))
	if len(debs) != 1 {
		testfixtures.Deb(t, "shim-signed")
		debs, _ = filepath.Glob(filepath.Join(testfixtures.Repo(), ".cache", "debs", "shim-signed_*.deb"))
	}
	// Debian's own shim-signed: the shim that booted; nothing changes.
	code, out, errs := run(t, "measure", "predict", "-o", "json", "--shim-package", debs[0], measureLog)
	if code != 0 || strings.Contains(out, `"changed": true`) || !strings.Contains(out, "same Authenticode digest") && !strings.Contains(out, `"changes": null`) {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
}

// TestMeasurePredictKernelAndLUKS predicts a new kernel (--kernel: any
// signed EFI image stands for it; mmx64.efi here) for a machine whose LUKS2
// volume (--luks, made by Debian's cryptsetup with a systemd-tpm2 token as
// systemd-cryptenroll writes it) is sealed to PCR 4+7, and the fixture's own
// kernel, which the log measured: PCR 4 stays.
func TestMeasurePredictKernelAndLUKS(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Peers)
	dir := t.TempDir()
	vol := filepath.Join(dir, "luks.img")
	tok := filepath.Join(dir, "token.json")
	os.WriteFile(filepath.Join(dir, "key"), []byte("secret"), 0o600)
	os.WriteFile(tok, []byte(`{"type":"systemd-tpm2","keyslots":["0"],"tpm2-blob":"AA==","tpm2-pcrs":[4,7],"tpm2-pcr-bank":"sha256","tpm2-primary-alg":"ecc","tpm2-policy-hash":"00","tpm2-pin":false}`), 0o600)
	for _, c := range [][]string{
		{"truncate", "-s", "20M", vol},
		{"cryptsetup", "luksFormat", "-q", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", vol, filepath.Join(dir, "key")},
		{"cryptsetup", "token", "import", "--json-file", tok, vol},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s (scripts/deps.sh installs cryptsetup-bin)", c, err, out)
		}
	}
	mm := testfixtures.Deb(t, "shim-helpers-amd64-signed/usr/lib/shim/mmx64.efi.signed")
	code, out, errs := run(t, "measure", "predict", "--kernel", mm, "--luks", vol, measureLog)
	if code != 0 || !strings.Contains(out, "the kernel image") || !strings.Contains(out, "will not unlock from the TPM: sealed to PCR 4+7 (systemd-cryptenroll's systemd-tpm2 token (LUKS2 token 0 of "+vol) {
		t.Errorf("new kernel: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = run(t, "measure", "predict", "--kernel", testfixtures.Kernel(t), "--luks", vol, measureLog)
	if code != 0 || !strings.Contains(out, "note: the new kernel has the same Authenticode digest") || !strings.Contains(out, "still unlocks: sealed to PCR 4+7") {
		t.Errorf("the measured kernel again: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := run(t, "measure", "predict", "--kernel", mm, "--luks", filepath.Join(dir, "key"), measureLog); code != 2 || !strings.Contains(errs, "not a LUKS volume") {
		t.Errorf("--luks on a file that is not LUKS: exit %d %q", code, errs)
	}
}
