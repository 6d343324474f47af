package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"strconv"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func sample() *Report {
	fs := []finding.Finding{
		{ID: "secureboot.esp-present", Suite: "secureboot", Title: "Target has an EFI System Partition", Severity: finding.High,
			Status: finding.Pass, Message: "EFI System Partition at partition 1", Evidence: []string{"partition 1"}},
		{ID: "secureboot.shim-trusted", Suite: "secureboot", Title: "Firmware db trusts the shim", Severity: finding.Critical,
			Status: finding.Fail, Subject: "EFI/BOOT/BOOTX64.EFI", Message: "shim is signed only by the Microsoft UEFI CA 2023; db trusts only the 2011 CA",
			Remediation: "Add the Microsoft UEFI CA 2023 to db before installing this shim.", References: []string{"UEFI 2.10 §32.5"}},
		{ID: "baseline.os-supported", Suite: "baseline", Title: "Operating system release is supported by its vendor", Severity: finding.High,
			Status: finding.NotApplicable, Message: "no os-release file in the root file system"},
		{ID: "baseline.sshd-config", Suite: "baseline", Title: "sshd configuration is hardened", Severity: finding.Medium,
			Status: finding.Error, Message: "etc/ssh/sshd_config: Include loop", Remediation: "Fix the Include directives."},
		{ID: "cloud-image.root-fs-type", Suite: "cloud-image", Title: "Root file system type is accepted", Severity: finding.Medium,
			Status: finding.Pass, Message: "root file system is ext4 <&>"},
		{ID: "kernel.lockdown", Suite: "kernel", Title: "Kernel lockdown is on", Severity: finding.Medium,
			Status: finding.NotApplicable, Message: "no running kernel in an image"},
	}
	return New(Tool{Name: "vouch", Version: "test"}, TargetInfo{Path: "debian.qcow2", Kind: "image", Format: "qcow2", OS: "Debian GNU/Linux 12 (bookworm)"}, fs)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testfixtures.Golden(t, name, got, *update)
}

func TestGolden(t *testing.T) {
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, sample(), format); err != nil {
				t.Fatal(err)
			}
			ext := map[string]string{"table": "txt", "json": "json", "sarif": "sarif", "junit": "xml"}[format]
			golden(t, "sample."+ext, buf.Bytes())
			switch format {
			case "json", "sarif":
				if !json.Valid(buf.Bytes()) {
					t.Error("not valid JSON")
				}
			case "junit":
				var v junitSuites
				if err := xml.Unmarshal(buf.Bytes(), &v); err != nil {
					t.Error(err)
				}
				if v.Tests != 6 || v.Failures != 1 || v.Errors != 1 || v.Skipped != 2 {
					t.Errorf("junit counts %+v", v)
				}
			}
		})
	}
}

func TestSummary(t *testing.T) {
	r := sample()
	if r.Summary.Pass != 2 || r.Summary.Fail != 1 || r.Summary.NotApplicable != 2 || r.Summary.Error != 1 {
		t.Errorf("summary %+v", r.Summary.Counts)
	}
	// A suite with nothing applicable has no compliance (JSON null, "n/a"),
	// not 0%; one where everything that applied failed has 0%.
	want := map[string]string{"secureboot": "50", "baseline": "0", "cloud-image": "100", "kernel": "n/a"}
	for _, s := range r.Summary.Suites {
		got := "n/a"
		if s.Compliance != nil {
			got = strconv.FormatFloat(*s.Compliance, 'f', -1, 64)
		}
		if got != want[s.Suite] {
			t.Errorf("suite %s compliance %s, want %s", s.Suite, got, want[s.Suite])
		}
	}
	var table bytes.Buffer
	if err := WriteTable(&table, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "  kernel          n/a (nothing applied; 1 not applicable)\n") || strings.Contains(table.String(), "kernel         0.0%") {
		t.Errorf("table does not say n/a for the kernel suite:\n%s", table.String())
	}
	var js struct {
		Summary struct {
			Suites []map[string]any `json:"suites"`
		} `json:"summary"`
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil || json.Unmarshal(b.Bytes(), &js) != nil {
		t.Fatalf("json: %v\n%s", err, b.String())
	}
	for _, s := range js.Summary.Suites {
		if c, ok := s["compliance"]; !ok || (s["suite"] == "kernel") != (c == nil) {
			t.Errorf("JSON suite %v: compliance %v", s["suite"], c)
		}
	}
	if err := Write(&bytes.Buffer{}, r, "pdf"); err == nil {
		t.Error("unknown format accepted")
	}
}
