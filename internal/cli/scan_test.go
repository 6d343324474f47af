package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestScanFirmwareFlags: with --vars, --efivars or --firmware every
// secure boot check gets firmware variables on a disk image; without, the
// firmware checks are not applicable for want of them.
func TestScanFirmwareFlags(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	img := testfixtures.Path(t, "debian.qcow2")
	na := func(args ...string) (int, int) {
		t.Helper()
		code, out, errs := run(t, append([]string{"scan", "--suite", "secureboot", "-o", "json", "--fail-on", "none"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var r struct {
			Findings []struct {
				ID      string `json:"id"`
				Message string `json:"message"`
			} `json:"findings"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		n := 0
		for _, f := range r.Findings {
			if strings.Contains(f.Message, "needs firmware variables") {
				n++
			}
		}
		return n, len(r.Findings)
	}
	if n, all := na(img); n == 0 || all == 0 {
		t.Errorf("no firmware: %d of %d findings lack firmware variables, want some", n, all)
	}
	for _, args := range [][]string{
		{"--vars", ovmfVarsFile},
		{"--firmware", "microsoft-both"},
		{"--efivars", testfixtures.Data("secureboot", "efivars-shim-test-data-1")},
	} {
		if n, all := na(append(args, img)...); n != 0 || all == 0 {
			t.Errorf("%v: %d of %d findings lack firmware variables, want none", args, n, all)
		}
	}
	if code, _, errs := run(t, "scan", "--vars", ovmfVarsFile, "--firmware", "microsoft-2011", img); code != ExitError || !strings.Contains(errs, "give one of --vars, --efivars and --firmware") {
		t.Errorf("two sources: exit %d %s", code, errs)
	}
}
