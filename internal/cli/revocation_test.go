package cli

import (
	"crypto"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func sharedDBX(name string) string { return testfixtures.Data("secureboot", "dbx", name) }

type impactJSON struct {
	RevocationImpact struct {
		FirmwareKnown bool `json:"firmwareKnown"`
		DBX           *struct {
			Form    string         `json:"form"`
			Arch    string         `json:"arch"`
			Entries map[string]int `json:"entries"`
		} `json:"dbx"`
		SBAT *struct {
			After struct {
				Datestamp string `json:"datestamp"`
			} `json:"levelAfter"`
		} `json:"sbatLevel"`
		Binaries []struct {
			Path      string           `json:"path"`
			Role      string           `json:"role"`
			Before    string           `json:"before"`
			After     string           `json:"after"`
			Revoked   bool             `json:"revoked"`
			RevokedBy []map[string]any `json:"revokedBy"`
		} `json:"binaries"`
		BootPaths   []map[string]any `json:"bootPaths"`
		Revoked     []string         `json:"revoked"`
		BootsBefore bool             `json:"bootsBefore"`
		BootsAfter  bool             `json:"bootsAfter"`
		WhatIf      map[string]any   `json:"whatIf"`
		Verdict     string           `json:"verdict"`
	} `json:"revocationImpact"`
	Transition map[string]any `json:"transition"`
}

func runImpact(t *testing.T, wantCode int, args ...string) impactJSON {
	t.Helper()
	code, out, errs := run(t, append([]string{"secureboot", "--format", "json"}, args...)...)
	if code != wantCode {
		t.Fatalf("%v: exit %d, want %d: %s", args, code, wantCode, errs)
	}
	var r impactJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %v: %q", args, err, out)
	}
	if r.Transition == nil {
		t.Errorf("%v: the secureboot report lost its transition section", args)
	}
	return r
}

// TestSecureBootDBXUpdate: Microsoft's published dbx update, both forms, on
// the fixture image (Debian 12 as installed): Debian's shim, GRUB and kernel
// are not revoked, the machine still boots. Then a list with Debian GRUB's
// hash added: GRUB revoked with the list's description, exit 1.
func TestSecureBootDBXUpdate(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.OVMF)
	img := testfixtures.Path(t, "debian.raw")
	r := runImpact(t, 0, "--vars", ovmfVarsFile, "--dbx-update", sharedDBX("DBXUpdate-amd64.bin"), img)
	ri := r.RevocationImpact
	if !ri.FirmwareKnown || ri.DBX == nil || ri.DBX.Entries["SHA256"] != 443 || !ri.BootsBefore || !ri.BootsAfter || len(ri.Revoked) != 0 || len(ri.Binaries) != 9 {
		t.Errorf("DBXUpdate.bin: %+v", ri)
	}
	for _, b := range ri.Binaries {
		if b.Before != "allowed" || b.After != "allowed" || b.Revoked || len(b.RevokedBy) != 0 {
			t.Errorf("%s: %+v", b.Path, b)
		}
	}
	// The JSON list without a firmware state: the microsoft-both stand-in
	// and an answer per profile.
	r = runImpact(t, 0, "--dbx-update", sharedDBX("dbx_info_msft_latest.json"), img)
	ri = r.RevocationImpact
	if ri.FirmwareKnown || ri.DBX.Arch != "x64" || len(ri.WhatIf) != 3 || !ri.BootsAfter {
		t.Errorf("JSON list: %+v", ri)
	}

	// Debian GRUB's hash added to the JSON list.
	// The image's ESP holds Debian's signed GRUB as packaged.
	grub, err := authenticode.Parse(readDeb(t, signedEFI[3]))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(readFile(t, sharedDBX("dbx_info_msft_latest.json")), &doc); err != nil {
		t.Fatal(err)
	}
	images := doc["images"].(map[string]any)
	images["x64"] = append(images["x64"].([]any), map[string]any{
		"authenticodeHash": hex.EncodeToString(grub.Digest(crypto.SHA256)), "hashType": "SHA256", "flatHash": "",
		"filename": "grubx64.efi", "description": "test: Debian 12 GRUB", "companyName": "Debian",
		"dateOfAddition": "2026-07-01", "signingAuthority": "CN = Debian Secure Boot CA"})
	list, _ := json.Marshal(doc)
	listPath := writeTemp(t, "grub-revoked.json", list)
	r = runImpact(t, 1, "--vars", ovmfVarsFile, "--dbx-update", listPath, img)
	ri = r.RevocationImpact
	if ri.BootsAfter || strings.Join(ri.Revoked, " ") != "EFI/debian/grubx64.efi EFI/BOOT/grubx64.efi" {
		t.Errorf("GRUB revoked: %+v", ri)
	}
	for _, bin := range ri.Binaries {
		if bin.Path == "EFI/debian/grubx64.efi" && (len(bin.RevokedBy) != 1 || bin.RevokedBy[0]["description"] != "test: Debian 12 GRUB" || bin.RevokedBy[0]["dateOfAddition"] != "2026-07-01") {
			t.Errorf("revoked by %v", bin.RevokedBy)
		}
	}
	// The table for people.
	code, out, _ := run(t, "secureboot", "--vars", ovmfVarsFile, "--dbx-update", listPath, img)
	for _, want := range []string{"Revocation impact", "EFI/debian/grubx64.efi", "allowed → REVOKED", "test: Debian 12 GRUB", "boots → DOES NOT BOOT", "verdict: Does NOT boot after the dbx update"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("table: exit %d", code)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSecureBootSBATLevel: a level that revokes Debian's GRUB generation,
// the levels Debian's shim carries, a payload of shim's history file, and
// the deprecated --sbat-policy.
func TestSecureBootSBATLevel(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.OVMF)
	img := testfixtures.Path(t, "debian.raw")
	grub6 := writeTemp(t, "grub6.txt", []byte("sbat,1,2026010100\nshim,4\ngrub,6\n"))
	r := runImpact(t, 1, "--vars", ovmfVarsFile, "--sbat-level", grub6, img)
	ri := r.RevocationImpact
	if ri.BootsAfter || ri.SBAT == nil || ri.SBAT.After.Datestamp != "2026010100" || strings.Join(ri.Revoked, " ") != "EFI/debian/grubx64.efi EFI/BOOT/grubx64.efi" {
		t.Errorf("grub,6: %+v", ri)
	}
	r = runImpact(t, 0, "--vars", ovmfVarsFile, "--sbat-level", "latest", img)
	if ri := r.RevocationImpact; !ri.BootsAfter || ri.SBAT.After.Datestamp != "2025051000" || len(ri.Revoked) != 0 {
		t.Errorf("latest: %+v", ri)
	}
	history := testfixtures.Data("secureboot", "SbatLevel_Variable.txt")
	r = runImpact(t, 0, "--firmware", "microsoft-2011", "--sbat-level", history+"#2025051000", img)
	if ri := r.RevocationImpact; !ri.BootsAfter || ri.SBAT.After.Datestamp != "2025051000" {
		t.Errorf("history: %+v", ri)
	}
	// Unknown firmware: a level that breaks the boot exits 1 too.
	runImpact(t, 1, "--sbat-level", grub6, img)
	code, out, errs := run(t, "secureboot", "--format", "json", "--vars", ovmfVarsFile, "--sbat-policy", "latest", img)
	var old impactJSON
	if code != 0 || json.Unmarshal([]byte(out), &old) != nil || old.RevocationImpact.SBAT == nil || !strings.Contains(errs, "deprecated") {
		t.Errorf("--sbat-policy latest: exit %d, stderr %q", code, errs)
	}
	code, out, _ = run(t, "secureboot", "--help")
	if code != 0 || strings.Contains(out, "--sbat-policy string") || !strings.Contains(out, "--sbat-level") || !strings.Contains(out, "--dbx-update") {
		t.Errorf("help:\n%s", out)
	}
}

// TestSecureBootRevocationBadInput: unusable update and level files give one
// line naming the file, exit 2 and nothing on stdout.
func TestSecureBootRevocationBadInput(t *testing.T) {
	testfixtures.NeedFixtures(t)
	shim := readDeb(t, signedEFI[0])
	grub := readDeb(t, signedEFI[3])
	esp := espDir(t, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": shim, "EFI/BOOT/grubx64.efi": grub})
	noShim := espDir(t, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": grub})
	bin := readFile(t, sharedDBX("DBXUpdate-amd64.bin"))
	truncated := writeTemp(t, "truncated.bin", bin[:len(bin)-20])
	text := writeTemp(t, "notes.txt", []byte("hello, world\n"))
	var doc map[string]any
	if err := json.Unmarshal(readFile(t, sharedDBX("dbx_info_msft_latest.json")), &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "svns")
	noSvns, _ := json.Marshal(doc)
	badJSON := writeTemp(t, "list.json", noSvns)
	garbage := writeTemp(t, "level.txt", []byte("not a level\n"))
	history := testfixtures.Data("secureboot", "SbatLevel_Variable.txt")
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--dbx-update", truncated, esp}, []string{truncated, "malformed signature list", "offset 0x"}},
		{[]string{"--dbx-update", text, esp}, []string{text, "not a dbx update"}},
		{[]string{"--dbx-update", badJSON, esp}, []string{badJSON, `required member "svns" is missing`}},
		{[]string{"--dbx-update", filepath.Join(t.TempDir(), "missing.bin"), esp}, []string{"missing.bin"}},
		{[]string{"--sbat-level", garbage, esp}, []string{garbage, "line 1", "sbat,1,DATESTAMP"}},
		{[]string{"--sbat-level", history, esp}, []string{history, "#DATESTAMP"}},
		{[]string{"--sbat-level", history + "#1999010100", esp}, []string{history, "1999010100"}},
		{[]string{"--sbat-level", "latest", noShim}, []string{noShim, "no shim"}},
		{[]string{"--sbat-level", "latest", "--sbat-policy", "latest", esp}, []string{"--sbat-policy"}},
	}
	for _, c := range cases {
		args := append([]string{"secureboot", "--format", "json", "--firmware", "microsoft-both"}, c.args...)
		code, out, errs := run(t, args...)
		if code != 2 || out != "" {
			t.Errorf("%v: exit %d, stdout %q", c.args, code, out)
		}
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if n := len(lines); n != 1 && !(n == 2 && strings.Contains(lines[0], "deprecated")) {
			t.Errorf("%v: stderr has %d lines: %q", c.args, n, errs)
		}
		for _, w := range c.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%v: stderr %q lacks %q", c.args, errs, w)
			}
		}
	}
}
