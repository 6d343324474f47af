package secureboot

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/target"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func runChecks(t *testing.T, esp fstest.MapFS, fw *Firmware) map[string][]finding.Finding {
	t.Helper()
	env := &check.Env{Target: &target.Target{Kind: target.KindDirectory, Path: "test", ESP: esp, ESPPath: "."}}
	if fw != nil {
		SetFirmware(env, fw)
	}
	out := map[string][]finding.Finding{}
	for _, f := range check.Run(context.Background(), env, Checks()) {
		out[f.ID] = append(out[f.ID], f)
	}
	return out
}

func status(fs []finding.Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, string(f.Status))
	}
	return strings.Join(s, ",")
}

func TestChecks(t *testing.T) {
	testfixtures.NeedFixtures(t)
	for _, c := range Checks() {
		if !strings.HasPrefix(c.ID, Suite+".") || c.Suite != Suite || c.Title == "" || c.Run == nil {
			t.Errorf("bad check %+v", c)
		}
	}
	sh := debianShims(t)
	grub := deb(t, grubRel)
	esp := func(shim []byte) fstest.MapFS {
		return fstest.MapFS{"EFI/BOOT/BOOTX64.EFI": {Data: shim}, "EFI/BOOT/grubx64.efi": {Data: grub}}
	}
	p2011, _ := FromProfile(ProfileMicrosoft2011)
	p2023, _ := FromProfile(ProfileMicrosoft2023)
	offDbx := fwSpec{secureBootOff: true,
		db:  x509List(readCert(t, "db-microsoft-uefi-ca-2011.der")),
		dbx: hashes(mustGUID("c1c41626-504c-4092-aca9-41f936934328"), shimDigest(t, sh.dual))}.build(t)
	cases := []struct {
		name string
		esp  fstest.MapFS
		fw   *Firmware
		want map[string]string
	}{
		{"image without firmware variables", esp(sh.dual), nil, map[string]string{
			"secureboot.enabled":            "not-applicable",
			"secureboot.boot-path-allowed":  "not-applicable",
			"secureboot.shim-2023-ready":    "not-applicable",
			"secureboot.shim-ca-transition": "pass",
			"secureboot.sbat-current":       "pass,pass",
			"secureboot.dbx-revoked":        "not-applicable",
		}},
		{"2011-only shim without firmware", esp(sh.only2011), nil, map[string]string{
			"secureboot.shim-ca-transition": "fail",
		}},
		{"dual shim, 2011 firmware", esp(sh.dual), p2011, map[string]string{
			"secureboot.enabled":            "pass",
			"secureboot.boot-path-allowed":  "pass",
			"secureboot.shim-2023-ready":    "fail",
			"secureboot.shim-ca-transition": "pass",
			"secureboot.dbx-revoked":        "pass",
		}},
		{"2011-only shim, 2023 firmware", esp(sh.only2011), p2023, map[string]string{
			"secureboot.boot-path-allowed": "fail",
			"secureboot.shim-2023-ready":   "pass",
		}},
		{"Secure Boot off, shim in dbx", esp(sh.dual), offDbx, map[string]string{
			"secureboot.enabled":           "fail",
			"secureboot.boot-path-allowed": "pass",
			"secureboot.dbx-revoked":       "fail",
		}},
		{"no shim", fstest.MapFS{"EFI/Other/x.txt": {Data: []byte("x")}}, p2011, map[string]string{
			"secureboot.boot-path-allowed":  "not-applicable",
			"secureboot.shim-ca-transition": "not-applicable",
			"secureboot.sbat-current":       "not-applicable",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := runChecks(t, c.esp, c.fw)
			for id, want := range c.want {
				if s := status(got[id]); s != want {
					t.Errorf("%s: %s, want %s: %+v", id, s, want, got[id])
				}
			}
			for _, f := range got["secureboot.boot-path-allowed"] {
				if f.Status != finding.NotApplicable && f.Subject != "EFI/BOOT/BOOTX64.EFI" {
					t.Errorf("subject %q", f.Subject)
				}
			}
		})
	}
}
