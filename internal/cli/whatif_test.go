package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestFleetWhatIfAgreesWithSecureBoot: the same change files, through the
// one change flag set, give the fixture image host the same verdict in
// `vouch secureboot` (run on the image) and in `vouch fleet whatif` (judged
// by the server on the facts the agent sent): a level revoking Debian's
// GRUB generation stops it, Microsoft's dbx update and the 2023 CA in db do
// not.
func TestFleetWhatIfAgreesWithSecureBoot(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	img := testfixtures.Path(t, "debian.raw")
	efivars := testfixtures.Data("secureboot", "efivars-shim-test-data-1")
	data, addr := t.TempDir(), freeAddr(t)
	serveProcess(t, addr, data)
	url := "http://" + addr
	b, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(b))
	code, enroll, errs := run(t, "token", "create", "--role", "enroll", "--server", url, "--token", admin)
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errs)
	}
	state := t.TempDir()
	if code, _, errs := run(t, "agent", "--server", url, "--enroll", strings.TrimSpace(enroll), "--state", state, "--root", img, "--efivars", efivars,
		"--hostname", "img", "--config", filepath.Join(state, "none.conf"), "--once"); code != 0 {
		t.Fatalf("agent: exit %d: %s", code, errs)
	}

	grub6 := writeTemp(t, "grub6.txt", []byte("sbat,1,2026010100\nshim,4\ngrub,6\n"))
	for _, tc := range []struct {
		name  string
		flags []string
		stop  bool
	}{
		{"grub,6", []string{"--sbat-level", grub6}, true},
		{"Microsoft's dbx update", []string{"--dbx-update", testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin")}, false},
		{"2023 CA in db", []string{"--db-add", testfixtures.Data("secureboot", "certs", "db-microsoft-uefi-ca-2023.der")}, false},
	} {
		sbCode, out, errs := run(t, append([]string{"secureboot", "--efivars", efivars, "-o", "json"}, append(tc.flags, img)...)...)
		if sbCode != 0 && sbCode != ExitFindings {
			t.Fatalf("%s: secureboot: exit %d: %s %s", tc.name, sbCode, out, errs)
		}
		wCode, out, errs := run(t, append([]string{"fleet", "whatif", "--server", url, "--token", admin, "-o", "json"}, tc.flags...)...)
		var w struct {
			StopBooting []string `json:"stopBooting"`
		}
		if err := json.Unmarshal([]byte(out), &w); err != nil {
			t.Fatalf("%s: fleet whatif: exit %d: %v: %q %s", tc.name, wCode, err, out, errs)
		}
		if got := len(w.StopBooting) == 1; got != tc.stop || (sbCode == ExitFindings) != tc.stop || (wCode == ExitFindings) != tc.stop {
			t.Errorf("%s: secureboot exit %d, fleet whatif exit %d stopBooting %v; want stop=%v in both", tc.name, sbCode, wCode, w.StopBooting, tc.stop)
		}
	}
}
