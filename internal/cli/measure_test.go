package cli

import (
	"encoding/json"
	"os"
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
