package secureboot

import (
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf16"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func utf16le(s string) []byte {
	b := []byte{0xff, 0xfe}
	for _, r := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, r)
	}
	return b
}

// debianESP is an ESP as Debian 12 installs it with the removable-media copy
// (grub-install --force-extra-removable): shim, fallback and MokManager in
// EFI/BOOT, shim, GRUB, MokManager and BOOTX64.CSV in EFI/debian.
func debianESP(t testing.TB, shim []byte) fstest.MapFS {
	grub, fb, mm := deb(t, grubRel), deb(t, fbRel), deb(t, mmRel)
	return fstest.MapFS{
		"EFI/BOOT/BOOTX64.EFI":   {Data: shim},
		"EFI/BOOT/fbx64.efi":     {Data: fb},
		"EFI/BOOT/mmx64.efi":     {Data: mm},
		"EFI/debian/shimx64.efi": {Data: shim},
		"EFI/debian/grubx64.efi": {Data: grub},
		"EFI/debian/mmx64.efi":   {Data: mm},
		"EFI/debian/BOOTX64.CSV": {Data: utf16le("shimx64.efi,debian,,This is the boot entry for debian\n")},
		"EFI/debian/grub.cfg":    {Data: []byte("search.fs_uuid x root\n")},
	}
}

func debianRoot(t testing.TB) fstest.MapFS {
	k := readArtefact(t, kernelPath(t))
	return fstest.MapFS{
		"etc/os-release":                       {Data: []byte("ID=debian\nVERSION_ID=\"12\"\n")},
		"boot/" + filepath.Base(kernelPath(t)): {Data: k},
		"boot/vmlinuz-1.0.0-1-amd64":           {Data: k}, // older than any real release: listed second
		"boot/config-1.0.0-1-amd64":            {Data: []byte("CONFIG_X=y\n")},
	}
}

func stagePaths(bp BootPath) string {
	var s []string
	for _, st := range bp.Stages {
		s = append(s, st.LoadedBy+">"+st.Path+"["+st.Role+"]")
	}
	for _, k := range bp.Kernels {
		s = append(s, k.LoadedBy+">"+k.Path)
	}
	return strings.Join(s, " ")
}

func TestBootPaths(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.OVMF)
	sh := debianShims(t).dual
	store := addBootEntries(t, readArtefact(t, ovmfVars), []string{`\EFI\debian\shimx64.efi`, `\EFI\other\loader.efi`})
	fw := firmwareFromStore(t, store)
	kernel := "boot/" + filepath.Base(kernelPath(t))
	paths := BootPaths(debianESP(t, sh), debianRoot(t), fw.Vars)
	want := []struct{ name, stages string }{
		{`Boot0100 vouch \EFI\debian\shimx64.efi`, "firmware>EFI/debian/shimx64.efi[shim] shim>EFI/debian/grubx64.efi[grub] shim protocol (GRUB)>" + kernel + " shim protocol (GRUB)>boot/vmlinuz-1.0.0-1-amd64"},
		{`Boot0101 vouch \EFI\other\loader.efi`, "firmware>EFI/other/loader.efi[loader]"},
		{"removable media EFI/BOOT/BOOTX64.EFI", "firmware>EFI/BOOT/BOOTX64.EFI[shim] shim>EFI/BOOT/fbx64.efi[fallback] firmware>EFI/debian/shimx64.efi[shim] shim>EFI/debian/grubx64.efi[grub] shim protocol (GRUB)>" + kernel + " shim protocol (GRUB)>boot/vmlinuz-1.0.0-1-amd64"},
	}
	if len(paths) != len(want) {
		for _, p := range paths {
			t.Logf("%s: %s", p.Name, stagePaths(p))
		}
		t.Fatalf("%d paths, want %d", len(paths), len(want))
	}
	for i, w := range want {
		if paths[i].Name != w.name || stagePaths(paths[i]) != w.stages {
			t.Errorf("path %d:\n got %s: %s\nwant %s: %s", i, paths[i].Name, stagePaths(paths[i]), w.name, w.stages)
		}
	}
	Evaluate(paths, fw, Options{})
	if p := paths[1]; p.Boots != nil || !p.Stages[0].Absent || !strings.Contains(p.Verdict, "not on this ESP") {
		t.Errorf("entry for a file elsewhere: %+v", p)
	}
	paths = append(paths[:1], paths[2:]...)
	for _, p := range paths {
		if p.Boots == nil || !*p.Boots {
			t.Errorf("%s: %s", p.Name, p.Verdict)
		}
		for _, st := range append(p.Stages, p.Kernels...) {
			if st.Decision == nil || !st.Decision.Allowed {
				t.Errorf("%s %s: %+v", p.Name, st.Path, st.Decision)
			}
		}
	}

	// Without variables: the vendor directory is a path of its own, and
	// lookups ignore case.
	esp := fstest.MapFS{
		"efi/boot/bootx64.efi":   {Data: sh},
		"efi/boot/GRUBX64.EFI":   {Data: deb(t, grubRel)},
		"efi/debian/shimx64.efi": {Data: sh},
	}
	paths = BootPaths(esp, nil, nil)
	if len(paths) != 2 {
		t.Fatalf("%d paths", len(paths))
	}
	if got := stagePaths(paths[0]); got != "firmware>efi/boot/bootx64.efi[shim] shim>efi/boot/GRUBX64.EFI[grub]" {
		t.Errorf("case-insensitive path: %s", got)
	}
	if paths[1].Kind != KindVendor || !strings.Contains(stagePaths(paths[1]), "shim's second stage is missing") && paths[1].Stages[1].Error == "" {
		t.Errorf("vendor path: %+v", paths[1])
	}
	Evaluate(paths, nil, Options{})
	if paths[0].Boots != nil {
		t.Errorf("unknown firmware judged: %s", paths[0].Verdict)
	}
	if paths[1].Boots == nil || *paths[1].Boots {
		t.Errorf("missing second stage: %s", paths[1].Verdict)
	}
	if BootPaths(nil, nil, nil) != nil {
		t.Error("paths without an ESP")
	}
}

// TestTransition: the compatibility table, with Debian's shims on the
// what-if profiles.
func TestTransition(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.OVMF)
	sh := debianShims(t)
	grub := deb(t, grubRel)
	esp := func(shim []byte) fstest.MapFS {
		return fstest.MapFS{"EFI/BOOT/BOOTX64.EFI": {Data: shim}, "EFI/BOOT/grubx64.efi": {Data: grub}}
	}
	type tr struct{ today, with2023 bool }
	cases := []struct {
		profile string
		shim    string
		want    tr
		advice  string
	}{
		{ProfileMicrosoft2011, "2011-only", tr{true, false}, "Add the Microsoft UEFI CA 2023 to db"},
		{ProfileMicrosoft2011, "2023-only", tr{false, false}, "Add the Microsoft UEFI CA 2023 to db"},
		{ProfileMicrosoft2011, "dual", tr{true, false}, "Add the Microsoft UEFI CA 2023 to db"},
		{ProfileMicrosoft2023, "2011-only", tr{false, true}, "Install a shim signed by the Microsoft UEFI CA 2023"},
		{ProfileMicrosoft2023, "2023-only", tr{true, true}, "Ready"},
		{ProfileMicrosoft2023, "dual", tr{true, true}, "Ready"},
		{ProfileMicrosoftBoth, "2011-only", tr{true, true}, "install your distribution's dual-signed"},
		{ProfileMicrosoftBoth, "2023-only", tr{true, true}, "Ready"},
		{ProfileMicrosoftBoth, "dual", tr{true, true}, "Ready"},
	}
	shims := map[string][]byte{"2011-only": sh.only2011, "2023-only": sh.only2023, "dual": sh.dual}
	for _, c := range cases {
		fw, err := FromProfile(c.profile)
		if err != nil {
			t.Fatal(err)
		}
		r := Analyze(esp(shims[c.shim]), nil, fw, Options{})
		got := tr{r.Transition.BootsToday, r.Transition.BootsWith2023OnlyShim}
		if got != c.want {
			t.Errorf("%s, %s shim: %+v, want %+v (%s)", c.profile, c.shim, got, c.want, r.Transition.Advice)
		}
		if !strings.Contains(r.Transition.Advice, c.advice) {
			t.Errorf("%s, %s shim: advice %q lacks %q", c.profile, c.shim, r.Transition.Advice, c.advice)
		}
		if !r.Transition.FirmwareKnown || !r.Transition.SecureBootEnabled {
			t.Errorf("%+v", r.Transition)
		}
	}

	// Secure Boot off, and the shim's hash in dbx.
	off := fwSpec{secureBootOff: true, db: x509List(readCert(t, "db-microsoft-uefi-ca-2011.der"))}.build(t)
	r := Analyze(esp(sh.only2011), nil, off, Options{})
	if !r.Transition.BootsToday || !r.Transition.BootsWith2023OnlyShim || r.Transition.SecureBootEnabled || !strings.Contains(r.Transition.Advice, "If you turn it on with this db: it boots today, does not boot with a 2023-only shim") {
		t.Errorf("Secure Boot off: %+v", r.Transition)
	}
	dbx := firmwareFromStore(t, deriveStore(t, storeBothDbx, shimDigest(t, sh.dual)))
	r = Analyze(esp(sh.dual), nil, dbx, Options{})
	if r.Transition.BootsToday || !strings.Contains(r.Transition.Advice, "revoked") {
		t.Errorf("shim in dbx: %+v", r.Transition)
	}
	// Unknown firmware: per-profile answers.
	r = Analyze(esp(sh.dual), nil, nil, Options{})
	if r.Transition.FirmwareKnown || len(r.Transition.WhatIf) != 3 || !r.Transition.WhatIf[ProfileMicrosoft2011].BootsToday || r.Transition.WhatIf[ProfileMicrosoft2011].BootsWith2023OnlyShim {
		t.Errorf("unknown firmware: %+v", r.Transition)
	}
	if want := []string{CAUEFI2011, CAUEFI2023}; strings.Join(r.Transition.ShimSignedBy, ",") != strings.Join(want, ",") {
		t.Errorf("shimSignedBy %v", r.Transition.ShimSignedBy)
	}
}

// TestAnalyzeSBATRevoked: a GRUB revoked by the SbatLevel variable stops the
// path, and the advice says what to update.
func TestAnalyzeSBATRevoked(t *testing.T) {
	testfixtures.NeedFixtures(t)
	sh := debianShims(t).dual
	spec := fwSpec{db: x509List(readCert(t, "db-microsoft-uefi-ca-2011.der"), readCert(t, "db-microsoft-uefi-ca-2023.der")),
		sbatLevel: "sbat,1,2099010100\nshim,4\ngrub,6\n"}
	r := Analyze(fstest.MapFS{"EFI/BOOT/BOOTX64.EFI": {Data: sh}, "EFI/BOOT/grubx64.efi": {Data: deb(t, grubRel)}}, nil, spec.build(t), Options{})
	bp := r.BootPaths[0]
	if bp.Boots == nil || *bp.Boots || !strings.Contains(bp.Verdict, "SBAT") {
		t.Fatalf("%s", bp.Verdict)
	}
	if !strings.Contains(r.Transition.Advice, "SBAT") {
		t.Errorf("advice %q", r.Transition.Advice)
	}
	// A level that revokes shim itself: the self-check stops it.
	spec.sbatLevel = "sbat,1,2099010100\nshim,5\n"
	r = Analyze(fstest.MapFS{"EFI/BOOT/BOOTX64.EFI": {Data: sh}, "EFI/BOOT/grubx64.efi": {Data: deb(t, grubRel)}}, nil, spec.build(t), Options{})
	if st := r.BootPaths[0].Stages[0]; st.SelfCheck == nil || st.SelfCheck.Allowed || *r.BootPaths[0].Boots {
		t.Errorf("self check: %+v", st.SelfCheck)
	}
}
