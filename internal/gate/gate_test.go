package gate

import (
	"crypto"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/gate/gatetest"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func bin(t *testing.T, name string, b []byte) *Binary {
	t.Helper()
	b2, err := ParseBinary(name, b)
	if err != nil {
		t.Fatal(err)
	}
	return b2
}

func profile(t *testing.T, name string) *secureboot.Firmware {
	t.Helper()
	fw, err := secureboot.FromProfile(name)
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

func TestJudge(t *testing.T) {
	testfixtures.NeedFixtures(t)
	shim2023 := bin(t, "new-shimx64.efi", gatetest.Shim2023Only(t))
	dual := bin(t, "dual-shimx64.efi", gatetest.DualShim(t))
	shim2011 := bin(t, "old-shimx64.efi", gatetest.Shim2011Only(t))
	grub := bin(t, "grubx64.efi", gatetest.ReadDebFile(t, gatetest.GRUBDeb))
	kernelName, kernelBytes := gatetest.Kernel(t)
	kernel := bin(t, kernelName, kernelBytes)
	// Debian's GRUB re-signed by another vendor's key: Debian's shim trusts
	// only Debian's key for its second stage.
	otherGRUB := bin(t, "other-vendor-grubx64.efi", gatetest.OtherVendorGRUB(t))

	store2011 := gatetest.Store2011(t)
	fw2011 := gatetest.Firmware(t, store2011)
	fwBoth := gatetest.Firmware(t, gatetest.StoreBoth(t))
	fwNoPK := gatetest.Firmware(t, readFile(t, gatetest.OVMFVarsNoPK))
	digest := shim2023.Image.Digest(crypto.SHA256)
	fwDbx := gatetest.Firmware(t, gatetest.EditStore(t, gatetest.StoreBoth(t), func(s *efi.VarStore) {
		l := efi.SignatureList{Type: efi.CertSHA256GUID, Signatures: []efi.SignatureData{{Data: digest}}}
		if err := s.AppendSignatureList("dbx", efi.ImageSecurityDatabaseGUID, l); err != nil {
			t.Fatal(err)
		}
	}))
	// An SbatLevel newer than anything shim carries that revokes shim
	// generations below 99: shim refuses itself.
	fwSbat := gatetest.Firmware(t, gatetest.EditStore(t, gatetest.StoreBoth(t), func(s *efi.VarStore) {
		v := efi.Variable{Name: "SbatLevel", GUID: efi.ShimLockGUID, Attributes: efi.NonVolatile | efi.BootServiceAccess, Data: []byte("sbat,1,2099010100\nshim,99\n")}
		if err := s.Set(v); err != nil {
			t.Fatal(err)
		}
	}))

	tests := []struct {
		name         string
		req          Request
		outcome      string
		boots        bool
		msg, advice  []string
		checks       int
		refusedCheck string
	}{
		{
			name:    "2023-only shim on 2011-only firmware",
			req:     Request{Shim: shim2023, GRUB: grub, Kernel: kernel, Firmware: fw2011},
			outcome: Refused,
			msg: []string{"this firmware's db trusts only the Microsoft Windows Production PCA 2011 and the Microsoft Corporation UEFI CA 2011",
				"new-shimx64.efi is signed only by the Microsoft UEFI CA 2023", "installing it would leave the machine unbootable"},
			advice:       []string{"Update the firmware db first", "fwupdmgr", "vouch firmware vars VARS.fd db add db-microsoft-uefi-ca-2023.der"},
			checks:       4,
			refusedCheck: stepFirmware,
		},
		{
			name:    "2023-only shim once db holds the 2023 CA",
			req:     Request{Shim: shim2023, GRUB: grub, Kernel: kernel, Firmware: fwBoth},
			outcome: Safe, boots: true,
			msg:    []string{"new-shimx64.efi boots on this firmware", "Microsoft UEFI CA 2023", "its own SBAT passes", "it accepts grubx64.efi", "it accepts the kernel " + kernelName},
			checks: 4,
		},
		{
			name:    "dual-signed shim on 2011-only firmware",
			req:     Request{Shim: dual, Firmware: fw2011},
			outcome: Safe, boots: true, msg: []string{"Microsoft Corporation UEFI CA 2011"}, checks: 2,
		},
		{
			name:    "2011-only shim on 2023-only firmware",
			req:     Request{Shim: shim2011, Firmware: profile(t, secureboot.ProfileMicrosoft2023)},
			outcome: Refused,
			msg:     []string{"is signed only by the Microsoft Corporation UEFI CA 2011"},
			advice:  []string{"Install a shim signed by the Microsoft UEFI CA 2023"}, checks: 2, refusedCheck: stepFirmware,
		},
		{
			name:    "shim hash in dbx",
			req:     Request{Shim: shim2023, Firmware: fwDbx},
			outcome: Refused,
			msg:     []string{"this firmware's dbx revokes new-shimx64.efi", "dbx: SHA-256 hash of the image"},
			advice:  []string{"This shim build is revoked"}, checks: 2, refusedCheck: stepFirmware,
		},
		{
			name:    "machine SbatLevel revokes the new shim",
			req:     Request{Shim: shim2023, Firmware: fwSbat},
			outcome: Refused,
			msg:     []string{"own SBAT is revoked by this machine's SBAT level", "shim generation 4 is below the SbatLevel minimum 99"},
			advice:  []string{"newer shim build"}, checks: 2, refusedCheck: stepSelf,
		},
		{
			name:    "new shim refuses a GRUB signed by another vendor",
			req:     Request{Shim: shim2023, GRUB: otherGRUB, Firmware: fwBoth},
			outcome: Refused,
			msg:     []string{"would refuse its second stage other-vendor-grubx64.efi", "no signature verifies with db, MokList or shim's vendor certificate"},
			advice:  []string{"GRUB build signed for the new shim"}, checks: 3, refusedCheck: stepGRUB,
		},
		{
			name:    "setup mode: nothing enforced",
			req:     Request{Shim: shim2023, Firmware: fwNoPK},
			outcome: NotEnforced, boots: true,
			msg:    []string{"setup mode", "cannot stop the machine booting"},
			advice: []string{"If Secure Boot is turned on with this db"}, checks: 1,
		},
		{
			name:    "no firmware",
			req:     Request{Shim: shim2023, NoFirmware: "no UEFI here"},
			outcome: NoFirmware, boots: true,
			msg:    []string{"no UEFI here; nothing can refuse new-shimx64.efi"},
			advice: []string{"microsoft-2011: would NOT boot", "microsoft-2023: boots", "microsoft-both: boots"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(tc.req)
			if v.Outcome != tc.outcome || v.Boots != tc.boots {
				t.Fatalf("outcome %s boots %v, want %s %v: %s", v.Outcome, v.Boots, tc.outcome, tc.boots, v.Message)
			}
			for _, s := range tc.msg {
				if !strings.Contains(v.Message, s) {
					t.Errorf("message lacks %q:\n%s", s, v.Message)
				}
			}
			for _, s := range tc.advice {
				if !strings.Contains(v.Advice, s) {
					t.Errorf("advice lacks %q:\n%s", s, v.Advice)
				}
			}
			if len(v.Checks) != tc.checks {
				t.Errorf("%d checks, want %d: %+v", len(v.Checks), tc.checks, v.Checks)
			}
			if tc.refusedCheck != "" {
				i := refusal(v.Checks)
				if i < 0 || v.Checks[i].Step != tc.refusedCheck {
					t.Errorf("refused at %d, want step %q: %+v", i, tc.refusedCheck, v.Checks)
				}
			}
			if tc.outcome == NoFirmware {
				if v.WhatIf[secureboot.ProfileMicrosoft2011] || !v.WhatIf[secureboot.ProfileMicrosoft2023] || !v.WhatIf[secureboot.ProfileMicrosoftBoth] {
					t.Errorf("what-if %v", v.WhatIf)
				}
			}
		})
	}
}

func TestParseShim(t *testing.T) {
	testfixtures.NeedFixtures(t)
	if _, err := ParseShim("notes.txt", []byte("hello, not a PE image")); err == nil || !strings.Contains(err.Error(), "notes.txt: not an EFI binary") {
		t.Errorf("text file: %v", err)
	}
	grub := gatetest.ReadDebFile(t, gatetest.GRUBDeb)
	if _, err := ParseShim("grubx64.efi", grub); err == nil || !strings.Contains(err.Error(), "grubx64.efi: not a shim") {
		t.Errorf("GRUB: %v", err)
	}
	if _, err := ParseShim("shim.efi", gatetest.DualShim(t)[:4096]); err == nil || !strings.Contains(err.Error(), "shim.efi: not an EFI binary") {
		t.Errorf("truncated shim: %v", err)
	}
}

// TestTargetStages finds the GRUB behind the shim of Debian's extracted root
// and its kernel.
func TestTargetStages(t *testing.T) {
	testfixtures.NeedFixtures(t)
	s := targetStagesOf(t, testfixtures.Path(t, "debian.raw"))
	if s.GRUB == nil || !strings.HasSuffix(s.GRUB.Name, "EFI/debian/grubx64.efi") {
		t.Fatalf("GRUB %+v", s.GRUB)
	}
	if s.Kernel == nil || !strings.Contains(s.Kernel.Name, "boot/vmlinuz-") {
		t.Fatalf("kernel %+v", s.Kernel)
	}
}
