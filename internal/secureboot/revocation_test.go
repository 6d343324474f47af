package secureboot

import (
	"crypto"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	stdflag "flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var update = stdflag.Bool("update", false, "rewrite the golden files")

func dbxFile(name string) string { return filepath.Join(sharedDir, "dbx", name) }

// realJSON is Microsoft's JSON list, decoded for editing.
func realJSON(t testing.TB) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readArtefact(t, dbxFile("dbx_info_msft_latest.json")), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withImage adds an x64 image entry to a JSON list.
func withImage(t testing.TB, doc map[string]any, hash []byte, file, desc string) map[string]any {
	images := doc["images"].(map[string]any)
	images["x64"] = append(images["x64"].([]any), map[string]any{
		"authenticodeHash": strings.ToUpper(hex.EncodeToString(hash)), "hashType": "SHA256", "flatHash": "",
		"filename": file, "description": desc, "companyName": "Debian", "dateOfAddition": "2026-07-01",
		"signingAuthority": "CN = Microsoft Corporation UEFI CA 2011",
	})
	return doc
}

func sha256Set(lists []efi.SignatureList) map[string]bool {
	out := map[string]bool{}
	for _, l := range lists {
		if l.Type != efi.CertSHA256GUID {
			continue
		}
		for _, s := range l.Signatures {
			out[hex.EncodeToString(s.Data)] = true
		}
	}
	return out
}

// TestDBXUpdateForms: Microsoft's signed DBXUpdate.bin and its JSON list
// carry the same x64 revocations.
func TestDBXUpdateForms(t *testing.T) {
	bin, err := ReadDBXUpdate(dbxFile("DBXUpdate-amd64.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if bin.Form != FormAuthVar || bin.SignedAt == nil || !bin.SignedAt.Equal(time.Date(2010, 3, 6, 19, 17, 21, 0, time.UTC)) {
		t.Errorf("form %q, signed %v", bin.Form, bin.SignedAt)
	}
	if len(bin.Signers) == 0 || !strings.Contains(strings.Join(bin.Signers, "|"), "Microsoft") {
		t.Errorf("signers %q", bin.Signers)
	}
	if c := bin.Counts(""); len(c) != 1 || c["SHA256"] != 443 {
		t.Errorf("bin counts %v", c)
	}
	js, err := ReadDBXUpdate(dbxFile("dbx_info_msft_latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if js.Form != FormJSON || strings.Join(js.Arches(), ",") != "aarch64,arm,ia32,x64" {
		t.Errorf("form %q arches %v", js.Form, js.Arches())
	}
	// x64 images plus the 3 SVN entries; the certificate file is not beside it.
	if c := js.Counts("x64"); c["SHA256"] != 443+3 || c["X509"] != 0 {
		t.Errorf("json counts %v", c)
	}
	a, b := sha256Set(bin.Lists("")), sha256Set(js.arches["x64"])
	if len(a) != 443 || len(a) != len(b) {
		t.Fatalf("bin %d hashes, json %d", len(a), len(b))
	}
	for h := range a {
		if !b[h] {
			t.Errorf("bin hash %s not in the JSON x64 list", h)
		}
	}
	// The owner Microsoft gives them, and SVNs under SVN_OWNER_GUID.
	if o := bin.Lists("")[0].Signatures[0].Owner; o != microsoftOwnerGUID {
		t.Errorf("bin owner %s", o)
	}
	last := js.Lists("x64")
	if svn := last[len(last)-1]; svn.Signatures[0].Owner != svnOwnerGUID || len(svn.Signatures) != 3 {
		t.Errorf("svn list %+v", svn)
	}

	// The certificate entry resolves when its file is beside the list.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dbx.json"), readArtefact(t, dbxFile("dbx_info_msft_latest.json")), 0o644); err != nil {
		t.Fatal(err)
	}
	pca := readCert(t, "db-microsoft-windows-production-pca-2011.der")
	if err := os.WriteFile(filepath.Join(dir, "MicWinProPCA2011_2011-10-19.der"), pca.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	js2, err := ReadDBXUpdate(filepath.Join(dir, "dbx.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c := js2.Counts("x64"); c["X509"] != 1 {
		t.Errorf("with the certificate beside: %v", c)
	}
}

// fixtureESP is the ESP of scripts/build-fixtures.sh (esp.img.sha256):
// Debian's layout plus GRUB beside the removable-path shim and fallback in
// EFI/debian.
func fixtureESP(t testing.TB, shim []byte) fstest.MapFS {
	esp := debianESP(t, shim)
	esp["EFI/BOOT/grubx64.efi"] = &fstest.MapFile{Data: deb(t, grubRel)}
	esp["EFI/debian/fbx64.efi"] = &fstest.MapFile{Data: deb(t, fbRel)}
	return esp
}

// analyzeESP runs the revocation analysis on Debian's ESP and root.
func analyzeESP(t *testing.T, esp fstest.MapFS, fw *Firmware, rev Revocation) *RevocationImpact {
	t.Helper()
	paths := BootPaths(esp, debianRoot(t), nil)
	Evaluate(paths, fw, Options{})
	imp, err := AnalyzeRevocation(esp, paths, fw, Options{}, rev)
	if err != nil {
		t.Fatal(err)
	}
	return imp
}

func findBinary(imp *RevocationImpact, p, loadedBy string) *BinaryImpact {
	for i := range imp.Binaries {
		if imp.Binaries[i].Path == p && (loadedBy == "" || imp.Binaries[i].LoadedBy == loadedBy) {
			return &imp.Binaries[i]
		}
	}
	return nil
}

func ovmfFirmware(t *testing.T) *Firmware {
	return firmwareFromStore(t, readArtefact(t, ovmfVars))
}

// TestRevocationRealDBX: the published dbx update, in both forms, on the
// fixture image (Debian 12's ESP and root, scripts/build-fixtures.sh) under
// Debian's Microsoft-keyed OVMF: nothing is revoked, it still boots. The
// whole impact is a golden file.
func TestRevocationRealDBX(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.OVMF)
	tg, err := target.Open(testfixtures.Path(t, "debian.raw"), target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	fw := ovmfFirmware(t)
	r := AnalyzeTarget(tg, fw, Options{})
	for _, c := range []struct{ file, golden string }{
		{"DBXUpdate-amd64.bin", "revocation-dbxupdate-bin.json"},
		{"dbx_info_msft_latest.json", "revocation-dbxupdate-json.json"},
	} {
		u, err := ParseDBXUpdate(readArtefact(t, dbxFile(c.file)), c.file)
		if err != nil {
			t.Fatal(err)
		}
		imp, err := AnalyzeRevocation(tg.ESP, r.BootPaths, fw, Options{}, Revocation{DBX: u})
		if err != nil {
			t.Fatal(err)
		}
		if !imp.BootsBefore || !imp.BootsAfter || len(imp.Revoked) != 0 {
			t.Errorf("%s: before %v after %v revoked %v", c.file, imp.BootsBefore, imp.BootsAfter, imp.Revoked)
		}
		if imp.DBX.Before != 1 || imp.DBX.New != imp.DBX.After-1 {
			t.Errorf("%s: dbx %d → %d, %d new", c.file, imp.DBX.Before, imp.DBX.After, imp.DBX.New)
		}
		// Every binary: 4 of the ESP and the kernel on the paths; MokManager
		// twice, GRUB beside the removable shim and fallback beside the
		// vendor one on none.
		if len(imp.Binaries) != 9 {
			t.Errorf("%s: %d binaries", c.file, len(imp.Binaries))
		}
		got, err := json.MarshalIndent(imp, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, c.golden, append(got, '\n'))
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testfixtures.Golden(t, name, got, *update)
}

// TestRevocationDBXHits: updates that revoke Debian's GRUB or shim, in every
// form, by hash and by certificate.
func TestRevocationDBXHits(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.OVMF)
	sh := debianShims(t)
	grubDigest := parseImage(t, deb(t, grubRel)).Digest(crypto.SHA256)
	shimHash := shimDigest(t, sh.dual)
	esp := fixtureESP(t, sh.dual)
	bin := readArtefact(t, dbxFile("DBXUpdate-amd64.bin"))
	av, err := efi.ParseAuthVar2(bin)
	if err != nil {
		t.Fatal(err)
	}
	// An AUTH_2 update: Microsoft's header (its signature no longer covers
	// the payload; vouch does not verify it) and a list with GRUB's hash.
	auth2 := append(append([]byte(nil), bin[:len(bin)-len(av.Payload)]...), efi.MarshalSignatureLists([]efi.SignatureList{{
		Type: efi.CertSHA256GUID, Signatures: []efi.SignatureData{{Owner: microsoftOwnerGUID, Data: grubDigest}}}})...)

	ca2011 := readCert(t, "db-microsoft-uefi-ca-2011.der")
	sum := sha1.Sum(ca2011.Raw)
	withCert := func(beside bool) Revocation {
		doc := realJSON(t)
		doc["certificates"] = append(doc["certificates"].([]any), map[string]any{
			"value": "ca2011.der", "subjectName": "CN = Microsoft Corporation UEFI CA 2011", "issuerName": "CN = Microsoft Corporation Third Party Marketplace Root",
			"thumbprint": hex.EncodeToString(sum[:]), "description": "test: the 2011 UEFI CA revoked", "dateOfAddition": "2026-07-01"})
		dir := t.TempDir()
		p := filepath.Join(dir, "list.json")
		if err := os.WriteFile(p, marshal(t, doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if beside {
			if err := os.WriteFile(filepath.Join(dir, "ca2011.der"), ca2011.Raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		u, err := ReadDBXUpdate(p)
		if err != nil {
			t.Fatal(err)
		}
		return Revocation{DBX: u}
	}
	parse := func(b []byte, name string) Revocation {
		u, err := ParseDBXUpdate(b, name)
		if err != nil {
			t.Fatal(err)
		}
		return Revocation{DBX: u}
	}

	cases := []struct {
		name    string
		fw      *Firmware
		rev     Revocation
		revoked []string // newly refused, in report order
		by      string   // in the first revoked binary's revokedBy
		boots   bool
	}{
		{"JSON with GRUB's hash", ovmfFirmware(t), parse(marshal(t, withImage(t, realJSON(t), grubDigest, "grubx64.efi", "test: Debian GRUB")), "grub.json"),
			[]string{"EFI/debian/grubx64.efi", "EFI/BOOT/grubx64.efi"}, "dbx image hash SHA-256 " + hex.EncodeToString(grubDigest) + " (grubx64.efi, 2026-07-01, test: Debian GRUB)", false},
		{"JSON with shim's hash", ovmfFirmware(t), parse(marshal(t, withImage(t, realJSON(t), shimHash, "shimx64.efi", "test: Debian shim")), "shim.json"),
			[]string{"EFI/BOOT/BOOTX64.EFI", "EFI/debian/shimx64.efi"}, "dbx image hash SHA-256 " + hex.EncodeToString(shimHash), false},
		{"AUTH_2 with GRUB's hash", ovmfFirmware(t), parse(auth2, "grub.auth"),
			[]string{"EFI/debian/grubx64.efi", "EFI/BOOT/grubx64.efi"}, "dbx image hash SHA-256", false},
		{"AUTH_2 with GRUB's hash, profile", mustProfile(t, ProfileMicrosoft2023), parse(auth2, "grub.auth"),
			[]string{"EFI/debian/grubx64.efi", "EFI/BOOT/grubx64.efi"}, "dbx image hash", false},
		// edk2 rejects an image as soon as one signature verifies with a
		// dbx certificate, even when another would be allowed: the
		// dual-signed shim dies with the 2011 CA.
		{"JSON revoking the 2011 UEFI CA", ovmfFirmware(t), withCert(true),
			[]string{"EFI/BOOT/BOOTX64.EFI", "EFI/debian/shimx64.efi"}, "dbx certificate Microsoft Corporation UEFI CA 2011 (microsoft-uefi-ca-2011) (signature 1) (ca2011.der, 2026-07-01, test: the 2011 UEFI CA revoked)", false},
		{"the 2011 UEFI CA, found in the shim's signature", mustProfile(t, ProfileMicrosoftBoth), withCert(false),
			[]string{"EFI/BOOT/BOOTX64.EFI", "EFI/debian/shimx64.efi"}, "dbx certificate Microsoft Corporation UEFI CA 2011", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			imp := analyzeESP(t, esp, c.fw, c.rev)
			if strings.Join(imp.Revoked, " ") != strings.Join(c.revoked, " ") {
				t.Errorf("revoked %v, want %v", imp.Revoked, c.revoked)
			}
			if imp.BootsAfter != c.boots || !imp.BootsBefore {
				t.Errorf("boots before %v after %v: %s", imp.BootsBefore, imp.BootsAfter, imp.Verdict)
			}
			b := findBinary(imp, c.revoked[0], "")
			if b == nil || !b.Revoked || len(b.RevokedBy) == 0 || !strings.HasPrefix(b.RevokedBy[0].String(), c.by) {
				t.Fatalf("%s: %+v", c.revoked[0], b)
			}
			if !strings.Contains(imp.Verdict, "Does NOT boot") {
				t.Errorf("verdict %q", imp.Verdict)
			}
		})
	}
}

func mustProfile(t *testing.T, name string) *Firmware {
	fw, err := FromProfile(name)
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// TestRevocationSBAT: levels that revoke Debian's GRUB (grub,5 and
// grub.debian,5 in its .sbat) or its shim (shim,4), and the levels Debian's
// shim carries (automatic 2025021800, latest 2025051000).
func TestRevocationSBAT(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.OVMF)
	esp := fixtureESP(t, debianShims(t).dual)
	history := filepath.Join(sharedDir, "SbatLevel_Variable.txt")
	lvl := func(text string) Revocation {
		u, err := ParseSBATUpdate([]byte(text), "level.txt", "")
		if err != nil {
			t.Fatal(err)
		}
		return Revocation{SBAT: u}
	}
	arg := func(a string) Revocation {
		u, err := ParseSBATUpdateArg(a)
		if err != nil {
			t.Fatal(err)
		}
		return Revocation{SBAT: u}
	}
	grubs := []string{"EFI/debian/grubx64.efi", "EFI/BOOT/grubx64.efi"}
	shimBuilt := []string{"EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/fbx64.efi", "EFI/debian/shimx64.efi", "EFI/BOOT/mmx64.efi", "EFI/debian/fbx64.efi", "EFI/debian/mmx64.efi"}
	cases := []struct {
		name      string
		fw        *Firmware
		rev       Revocation
		after     string // the level shim enforces after
		revoked   []string
		by        string
		boots     bool
		noteMatch string
	}{
		{"grub,6", ovmfFirmware(t), lvl("sbat,1,2026010100\nshim,4\ngrub,6\n"), "sbat,1,2026010100\nshim,4\ngrub,6\n", grubs, "SBAT grub,6 in SbatLevel 2026010100 (SbatLevel variable) (the binary has grub,5)", false, ""},
		{"grub.debian,6", nil, lvl("sbat,1,2026010100\nshim,4\ngrub,5\ngrub.debian,6\n"), "sbat,1,2026010100\nshim,4\ngrub,5\ngrub.debian,6\n", grubs, "SBAT grub.debian,6", false, "firmware unknown"},
		{"shim,5", mustProfile(t, ProfileMicrosoft2011), lvl("sbat,1,2026010100\nshim,5\ngrub,5\n"), "sbat,1,2026010100\nshim,5\ngrub,5\n", shimBuilt, "SBAT shim,5", false, ""},
		{"latest", ovmfFirmware(t), arg("latest"), "sbat,1,2025051000\nshim,4\ngrub,5\ngrub.proxmox,2\n", nil, "", true, ""},
		{"automatic", ovmfFirmware(t), arg("automatic"), "sbat,1,2025021800\nshim,4\ngrub,5\n", nil, "", true, ""},
		{"history 2025051000", ovmfFirmware(t), arg(history + "#2025051000"), "sbat,1,2025051000\nshim,4\ngrub,5\ngrub.proxmox,2\n", nil, "", true, ""},
		// Older than what shim carries: shim puts its own back at boot.
		{"history 2023012900", ovmfFirmware(t), arg(history + "#2023012900"), "sbat,1,2025021800\nshim,4\ngrub,5\n", nil, "", true, "replaces it at boot"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			imp := analyzeESP(t, esp, c.fw, c.rev)
			if imp.SBAT == nil || imp.SBAT.After == nil || imp.SBAT.After.Text != c.after {
				t.Fatalf("level after %+v, want %q", imp.SBAT, c.after)
			}
			if imp.SBAT.Before.Datestamp != "2025021800" {
				t.Errorf("level before %q", imp.SBAT.Before.Text)
			}
			if strings.Join(imp.Revoked, " ") != strings.Join(c.revoked, " ") {
				t.Errorf("revoked %v, want %v", imp.Revoked, c.revoked)
			}
			if imp.BootsAfter != c.boots || !imp.BootsBefore {
				t.Errorf("boots before %v after %v: %s", imp.BootsBefore, imp.BootsAfter, imp.Verdict)
			}
			if len(c.revoked) > 0 {
				b := findBinary(imp, c.revoked[0], "")
				if b == nil || len(b.RevokedBy) == 0 || !strings.HasPrefix(b.RevokedBy[0].String(), c.by) {
					t.Errorf("%s: %+v", c.revoked[0], b)
				}
			}
			if c.noteMatch != "" && !strings.Contains(strings.Join(imp.Notes, "|"), c.noteMatch) {
				t.Errorf("notes %q lack %q", imp.Notes, c.noteMatch)
			}
			if c.fw == nil && (len(imp.WhatIf) != 3 || imp.WhatIf[ProfileMicrosoft2023].BootsAfter) {
				t.Errorf("what-if %+v", imp.WhatIf)
			}
		})
	}
}

// TestRevocationNoShim: latest and automatic need the target's shim.
func TestRevocationNoShim(t *testing.T) {
	testfixtures.NeedFixtures(t)
	esp := fstest.MapFS{"EFI/BOOT/BOOTX64.EFI": {Data: deb(t, grubRel)}}
	paths := BootPaths(esp, nil, nil)
	for _, kw := range []string{"latest", "automatic"} {
		u, err := ParseSBATUpdateArg(kw)
		if err != nil {
			t.Fatal(err)
		}
		_, err = AnalyzeRevocation(esp, paths, nil, Options{}, Revocation{SBAT: u})
		var re *RevocationError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "no shim") {
			t.Errorf("%s: %v", kw, err)
		}
	}
	// A file level on a shim-less target changes nothing, and says so.
	u, err := ParseSBATUpdate([]byte("sbat,1,2026010100\ngrub,9\n"), "x", "")
	if err != nil {
		t.Fatal(err)
	}
	imp, err := AnalyzeRevocation(esp, paths, mustProfile(t, ProfileMicrosoftBoth), Options{}, Revocation{SBAT: u})
	if err != nil || !strings.Contains(strings.Join(imp.Notes, "|"), "no shim") || len(imp.Revoked) != 0 {
		t.Errorf("%v %+v", err, imp)
	}
}

func TestSBATUpdateParse(t *testing.T) {
	history := readArtefact(t, filepath.Join(sharedDir, "SbatLevel_Variable.txt"))
	exported := append([]byte{7, 0, 0, 0}, "sbat,1,2024040900\nshim,4\ngrub,4\ngrub.peimage,2\n\x00"...)
	good := []struct {
		name, pick string
		b          []byte
		datestamp  string
		entries    int
	}{
		{"one payload", "", []byte("sbat,1,2024010900\nshim,4\ngrub,3\ngrub.debian,4\n"), "2024010900", 4},
		{"CRLF, no final newline", "", []byte("sbat,1,2024010900\r\nshim,4"), "2024010900", 2},
		{"exported variable", "", exported, "2024040900", 4},
		{"history by date", "2023091900", history, "2023091900", 3},
		{"history latest", "latest", history, "2025051000", 4},
		// Published twice: the later (shim,2 grub,2) form is taken.
		{"history, a date published twice", "2022052400", history, "2022052400", 3},
		{"history first", "2021030218", history, "2021030218", 1},
	}
	for _, c := range good {
		u, err := ParseSBATUpdate(c.b, "f", c.pick)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if u.Level.Datestamp != c.datestamp || len(u.Level.Entries) != c.entries {
			t.Errorf("%s: %q", c.name, u.Payload)
		}
	}
	bad := []struct {
		name, pick string
		b          []byte
		want       string
	}{
		{"empty", "", nil, "empty file"},
		{"binary", "", []byte{0x7f, 'E', 'L', 'F', 0, 1, 2}, "binary data"},
		{"garbage", "", []byte("hello world\n"), `line 1: first row "hello world" is not "sbat,1,DATESTAMP"`},
		{"bad row", "", []byte("sbat,1,2024010900\nshim four\n"), `line 2: row "shim four"`},
		{"history without pick", "", history, "holds 11 SbatLevel payloads"},
		{"unknown date", "2099010100", history, `no SbatLevel payload with datestamp "2099010100"`},
		{"pick from prose", "latest", []byte("no levels here\n"), "holds no SbatLevel payload"},
	}
	for _, c := range bad {
		_, err := ParseSBATUpdate(c.b, "level.txt", c.pick)
		var se *SBATLevelError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "level.txt") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Keywords, files and FILE#DATESTAMP from the command line.
	if u, err := ParseSBATUpdateArg("latest"); err != nil || u.Policy != SBATLatest || u.Keyword != "latest" {
		t.Errorf("latest: %+v %v", u, err)
	}
	if _, err := ParseSBATUpdateArg(filepath.Join(t.TempDir(), "missing.txt")); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing file: %v", err)
	}
}

// TestDBXUpdateBadInput: every unusable update is an *UpdateError naming
// the file (and the offset in binary forms).
func TestDBXUpdateBadInput(t *testing.T) {
	bin := readArtefact(t, dbxFile("DBXUpdate-amd64.bin"))
	av, err := efi.ParseAuthVar2(bin)
	if err != nil {
		t.Fatal(err)
	}
	hdr := len(bin) - len(av.Payload)
	withPayload := func(p []byte) []byte { return append(append([]byte(nil), bin[:hdr]...), p...) }
	badSize := append([]byte(nil), av.Payload...)
	badSize[24] = 47 // signature size 47 for SHA256
	badPKCS7 := append([]byte(nil), bin...)
	for i := 16 + 24; i < 16+24+64; i++ {
		badPKCS7[i] = 0xff
	}
	unknownType := efi.MarshalSignatureLists([]efi.SignatureList{{Type: efi.CertTypePKCS7GUID, Signatures: []efi.SignatureData{{Data: []byte{1}}}}})
	notCert := efi.MarshalSignatureLists([]efi.SignatureList{{Type: efi.CertX509GUID, Signatures: []efi.SignatureData{{Data: []byte("not a certificate")}}}})

	mutate := func(f func(doc map[string]any)) []byte {
		doc := realJSON(t)
		f(doc)
		return marshal(t, doc)
	}
	x64 := func(doc map[string]any) map[string]any {
		return doc["images"].(map[string]any)["x64"].([]any)[0].(map[string]any)
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"text", []byte("hello, world\n"), "not a dbx update"},
		{"truncated lists", bin[:len(bin)-20], "malformed signature list: signature list size 21292 extends past end of data"},
		{"truncated header", bin[:30], "not a dbx update"},
		{"bad signature size", withPayload(badSize), "malformed signature list: signature list body of 21264 bytes is not a multiple of signature size 47 (offset 0xd09)"},
		{"no lists", withPayload(nil), "holds no signature lists"},
		{"unknown type", withPayload(unknownType), "which firmware does not accept in dbx"},
		{"X509 entry not a certificate", withPayload(notCert), "entry 1: not an X.509 certificate"},
		{"PKCS#7 garbage", badPKCS7, "PKCS#7 signature does not parse"},
		{"JSON syntax", []byte(`{"images": [`), "JSON revocation list does not parse"},
		{"JSON no svns", mutate(func(d map[string]any) { delete(d, "svns") }), `top level: required member "svns" is missing`},
		{"JSON no arm", mutate(func(d map[string]any) { delete(d["images"].(map[string]any), "arm") }), `images: required member "arm" is missing`},
		{"JSON hashType", mutate(func(d map[string]any) { x64(d)["hashType"] = "SHA1" }), `images.x64[0]: hashType "SHA1" is not one of [SHA256]`},
		{"JSON no filename", mutate(func(d map[string]any) { delete(x64(d), "filename") }), `images.x64[0]: required member "filename" is missing`},
		{"JSON number", mutate(func(d map[string]any) { x64(d)["description"] = 7 }), `member "description" is not a string`},
		{"JSON short hash", mutate(func(d map[string]any) { x64(d)["authenticodeHash"] = "80B4D9" }), `images.x64[0].authenticodeHash: "80B4D9" is not 32 hexadecimal bytes`},
		{"JSON date", mutate(func(d map[string]any) { x64(d)["dateOfAddition"] = "April 2018" }), `is not a YYYY-MM-DD date`},
		{"JSON images array", mutate(func(d map[string]any) { d["images"] = []any{} }), "images: not an object"},
		{"JSON thumbprint", mutate(func(d map[string]any) {
			d["certificates"].([]any)[0].(map[string]any)["thumbprint"] = "xyz"
		}), `certificates[0].thumbprint`},
		{"JSON svn value", mutate(func(d map[string]any) { d["svns"].([]any)[0].(map[string]any)["value"] = "01" }), `svns[0].value`},
		{"JSON trailing data", append(readArtefact(t, dbxFile("dbx_info_msft_latest.json")), "{}"...), "data after the top-level object"},
	}
	for _, c := range cases {
		_, err := ParseDBXUpdate(c.b, "update.bin")
		var ue *UpdateError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "update.bin") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A certificate file beside the list that is not the one named.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "list.json"), readArtefact(t, dbxFile("dbx_info_msft_latest.json")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "MicWinProPCA2011_2011-10-19.der"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDBXUpdate(filepath.Join(dir, "list.json")); err == nil || !strings.Contains(err.Error(), "not the thumbprint") {
		t.Errorf("wrong certificate file: %v", err)
	}
	if _, err := ReadDBXUpdate(filepath.Join(dir, "missing.bin")); err == nil || !strings.Contains(err.Error(), "missing.bin") {
		t.Errorf("missing file: %v", err)
	}
}

// TestDBXUpdateBareLists: unsigned signature lists are an update too.
func TestDBXUpdateBareLists(t *testing.T) {
	bin := readArtefact(t, dbxFile("DBXUpdate-amd64.bin"))
	av, err := efi.ParseAuthVar2(bin)
	if err != nil {
		t.Fatal(err)
	}
	u, err := ParseDBXUpdate(av.Payload, "lists.esl")
	if err != nil || u.Form != FormSigLists || u.Counts("")["SHA256"] != 443 {
		t.Fatalf("%v %+v", err, u)
	}
}

// TestAppendDBX: an append write drops entries already in dbx, as edk2's
// FilterSignatureList does.
func TestAppendDBX(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	fw := ovmfFirmware(t)
	before := countEntries(fw.DBX)
	u, err := ReadDBXUpdate(dbxFile("DBXUpdate-amd64.bin"))
	if err != nil {
		t.Fatal(err)
	}
	after := fw.clone()
	if n := after.appendDBX(u.Lists("")); n != 443 {
		t.Errorf("%d new", n)
	}
	if n := after.appendDBX(u.Lists("")); n != 0 || countEntries(after.DBX) != before+443 {
		t.Errorf("second append: %d new, %d entries", n, countEntries(after.DBX))
	}
	if countEntries(fw.DBX) != before {
		t.Error("the original firmware state changed")
	}
	keys := make([]string, 0)
	for k := range u.Counts("") {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "SHA256" {
		t.Errorf("types %v", keys)
	}
}
